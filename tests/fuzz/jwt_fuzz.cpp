// libFuzzer target: bytes where the gateway expects a JWT or the token endpoint's form. The same
// input is
// - an Authorization header (Authenticator::authenticate: the bearer scheme, the compact JWS, its
//   signature against the issuer's ES256 and RS256 keys, the claims, the scopes), with and
//   without the "Bearer " the client would send;
// - an incoming Txn-Token (TransactionTokenService::verify);
// - a token decoded without verification, its claims checked against several requirements (what
//   `membrane token verify` shows, and the claim checks on their own);
// - a POST /txn/token body (TokenExchange::handle: the form, the client JWT, the subject token,
//   the scope and context rules, and a replacement minted when all of it holds).
// Seed tokens are signed with the world's keys (tests/fuzz/seeds.cpp), so mutations reach the
// checks after the signature.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_world.hpp"

namespace {

using namespace membrane;

void check_claims(const identity::DecodedToken& token) {
  identity::ClaimRequirements strict;
  strict.issuer = std::string(fuzz::issuer);
  strict.audiences = {std::string(fuzz::audience), std::string(fuzz::trust_domain)};
  strict.type = "txntoken+jwt";
  identity::ClaimRequirements lax;
  lax.require_expiry = false;
  lax.leeway = std::chrono::seconds(0);
  for (const auto* requirements : {&strict, &lax}) {
    const auto checked = identity::check_claims(token, *requirements, fuzz::now);
    if (!checked && checked.error.empty()) __builtin_trap();
  }
  (void)identity::token_scopes(token.claims);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fuzz::IdentityWorld world;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  for (const std::string& header : {"Bearer " + std::string(input), std::string(input)}) {
    const auto result = world.authenticator.authenticate(header, {"tools"}, fuzz::now);
    if (result) {
      if (result.identity->subject.empty()) __builtin_trap();
    } else if (result.status != 401 && result.status != 403) {
      __builtin_trap();
    }
  }
  (void)world.transaction_tokens->verify(input, fuzz::now);
  if (const auto decoded = identity::decode_unverified(input)) check_claims(*decoded);
  (void)identity::token_fingerprint(input);

  const auto reply = world.token_exchange.handle("application/x-www-form-urlencoded", input,
                                                 fuzz::token_endpoint, fuzz::now);
  if (reply.status == 200) {
    // A replacement is a transaction token this service accepts.
    const auto& token = reply.body.at("access_token").get_ref<const std::string&>();
    if (!world.transaction_tokens->verify(token, fuzz::now)) __builtin_trap();
  } else if (!reply.body.contains("error")) {
    __builtin_trap();
  }
  return 0;
}
