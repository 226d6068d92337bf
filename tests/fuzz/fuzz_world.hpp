// The fixed world the fuzz targets and the seed generator (seeds.cpp) share: the session-sealing
// secret, an issuer's keys, a Transaction Token Service and a workload allowed at its token
// endpoint, all made for fuzzing only (they protect nothing). A fixed clock keeps every run
// reproducible; the seed tokens are valid at that time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "membrane/identity/authenticator.hpp"
#include "membrane/identity/token_exchange.hpp"
#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::fuzz {

inline constexpr std::int64_t now = 1'900'000'000;  // 2030-03-17
inline constexpr std::string_view session_secret = "membrane fuzzing key, not a secret";
inline constexpr std::string_view issuer = "https://issuer.fuzz.example";
inline constexpr std::string_view audience = "https://gateway.fuzz.example/mcp";
inline constexpr std::string_view trust_domain = "fuzz.example";
inline constexpr std::string_view client_id = "fuzz-client";
inline constexpr std::string_view token_endpoint = "https://gateway.fuzz.example/txn/token";

// Signs the issuer's access tokens and the gateway's transaction tokens.
inline constexpr std::string_view es256_jwk =
    R"({"kty":"EC","crv":"P-256","kid":"fuzz-es256","alg":"ES256",)"
    R"("x":"cEJsnkTgTjyzMWZ0j-5TmagdjiT2xhb07JLoSbnRTFo",)"
    R"("y":"sIzz9dwNiRkGGjdmGWf2F8OZEVVwujFWpkccz08I0-c",)"
    R"("d":"fiGw1m75OTGqFKtGHQAowKpANc5edYCYiEuGD9yVQOs"})";
// The workload that authenticates at the token endpoint with client JWTs.
inline constexpr std::string_view client_jwk =
    R"({"kty":"OKP","crv":"Ed25519","kid":"fuzz-client","alg":"EdDSA",)"
    R"("x":"wWI9phZjwZTco1x9rzMn0wZ-GTiaMbWg4sPqucThIHM",)"
    R"("d":"Aqqt3Dsn0POEi5T-ZGdiWPQ2FggOmoJ1QQfxsfplOzo"})";
// A second issuer key, public only (RS256 tokens reach RSA verification, never pass it).
inline constexpr std::string_view rs256_jwk =
    R"({"kty":"RSA","kid":"fuzz-rs256","alg":"RS256","e":"AQAB","n":"vu_D7j0qrZBmkEK8aOabcKkw9VD-)"
    R"(vgs5wLEr1odh7l2yQ15FYuEoibV0So_iC1adEUibmIObyzvDzf5XITlhQkgIwM1oSxFv1vBzr_elmayujWwZeX5M8N)"
    R"(juydmNRINIJjg8d15-u0m2hwnBd0QuEipmrYV2_hCxBHWCCa8SOFRXGWLxGyAv-nFY-HPOk6-R1HdAyFw9QCYdF8uL6)"
    R"(rYcRZHw7JxsnpHa42fPGhS50Ng3bNwXqJJ8ZTix-w6C-4AAxNoOP0cUCvGFqsuY45Vv0iSvEtNKP1XaIPud3dWmp96)"
    R"(53qyjKZVIRjVeKQN0OXIJjbkNNEUwVB9qt6p0Jb3CTw"})";

inline identity::Jwk key(std::string_view jwk) {
  std::string error;
  auto key = identity::Jwk::from_json(identity::Json::parse(jwk), error);
  if (!key) throw std::runtime_error("fuzz key: " + error);
  return *key;
}

struct IdentityWorld {
  identity::KeySet issuer_keys{{key(es256_jwk), key(rs256_jwk)}};
  identity::Authenticator authenticator{identity::AuthenticatorOptions{std::string(issuer),
                                                                       {std::string(audience)},
                                                                       issuer_keys,
                                                                       std::chrono::seconds(60),
                                                                       {"mcp"}}};
  std::shared_ptr<const identity::TransactionTokenService> transaction_tokens =
      std::make_shared<const identity::TransactionTokenService>(
          identity::TransactionTokenOptions{std::string(trust_domain),
                                            "membrane",
                                            std::string(issuer),
                                            std::chrono::seconds(300),
                                            {key(es256_jwk)},
                                            identity::KeySet{{key(rs256_jwk)}}});
  identity::TokenExchange token_exchange{transaction_tokens, identity::KeySet{{key(client_jwk)}}};
};

}  // namespace membrane::fuzz
