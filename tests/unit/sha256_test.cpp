#include <catch2/catch.hpp>

#include <thread>

#include "membrane/core/sha256.hpp"

using membrane::core::sha256_hex;

TEST_CASE("sha256 gives the FIPS 180-2 digests, on any thread, call after call") {
  // The test vectors of FIPS 180-2 (appendix B).
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  const std::string empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  const std::string two_blocks = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
  CHECK(sha256_hex("abc") == abc);
  CHECK(sha256_hex("") == empty);
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") == two_blocks);
  CHECK(sha256_hex("abc") == abc);  // the reused context starts afresh
  CHECK(sha256_hex("abc", 8) == abc.substr(0, 16));
  CHECK(sha256_hex("abc", 64) == abc);
  std::string elsewhere;
  std::thread([&elsewhere] { elsewhere = sha256_hex("abc"); }).join();
  CHECK(elsewhere == abc);
}

TEST_CASE("a session's digest is the first 8 bytes of its SHA-256, remembered or not") {
  using membrane::core::session_digest;
  // More sessions than the memo has places, twice over, so that places are reused; an id too long
  // to be remembered; and ids that differ only in their last byte.
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i)
    ids.push_back("m1.session-" + std::to_string(i));
  ids.push_back(std::string(5000, 's'));
  ids.push_back(std::string(1024, 'a'));
  std::string last_byte_differs(1024, 'a');
  last_byte_differs.back() = 'b';
  ids.push_back(last_byte_differs);
  for (int round = 0; round < 3; ++round) {
    for (const auto& id : ids) {
      INFO(id.substr(0, 20) << " (" << id.size() << " bytes), round " << round);
      CHECK(session_digest(id) == sha256_hex(id, 8));
    }
  }
  CHECK(session_digest("m1.session-1") != session_digest("m1.session-2"));
}
