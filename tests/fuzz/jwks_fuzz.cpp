// libFuzzer target: the JSON documents identity servers send the gateway. A JWKS document as an
// issuer serves it at its jwks_uri (and as key files hold it): KeySet::parse_document is what the
// gateway does with the fetched body. Every key it accepts is then used the way the gateway uses
// keys: published again as JSON, looked up by kid and algorithm, asked to verify a signature
// (bytes from the input) and, with a private part, to sign. The same bytes are also read as a
// token endpoint's answer to the gateway's own client-credentials request for an upstream
// (upstream::read_token_response).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "membrane/identity/jwt.hpp"
#include "upstream/credentials.hpp"

namespace {

using namespace membrane::identity;

void use(const Jwk& key, std::string_view input) {
  (void)key.public_json().dump();
  (void)key.private_json().dump();
  // Whatever the input's tail says is a signature over its head.
  const std::string_view signature = input.substr(input.size() / 2);
  (void)key.verify(input.substr(0, input.size() / 2), signature);
  if (key.has_private_key()) {
    const auto signed_bytes = key.sign(input);
    // A key pair whose halves do not belong together may sign what it cannot verify; a
    // signature must at least have the algorithm's shape.
    if (signed_bytes && key.algorithm() != "RS256" && signed_bytes->size() != 64) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string error;
  // The gateway's cap on a fetched key set (gateway/remote_jwks.cpp).
  const auto keys = KeySet::parse_document(input, 100, error);
  if (!keys) {
    if (error.empty()) __builtin_trap();
  } else {
    if (keys->empty()) __builtin_trap();
    for (const Jwk& key : keys->keys()) {
      use(key, input);
      if (!keys->find(key.kid(), key.algorithm()) && !key.kid().empty()) __builtin_trap();
    }
    (void)keys->to_public_json().dump();
  }
  // A file holding one JWK (a key file) is read as a set of one.
  const Json document = Json::parse(input, nullptr, false);
  if (auto key = Jwk::from_json(document, error)) use(*key, input);

  for (const unsigned status : {200u, 400u}) {
    const auto answer = membrane::upstream::read_token_response(status, input);
    if (answer.error.empty() == answer.access_token.empty()) __builtin_trap();
    if (answer.error.empty() && answer.lifetime.count() < 1) __builtin_trap();
  }
  return 0;
}
