// The Transaction Token Service's token endpoint (draft-ietf-oauth-transaction-tokens-10 §7,
// an RFC 8693 token-exchange profile): a workload of the trust domain (an MCP server calling a
// database service) trades the transaction token it received for a replacement. The replacement
// keeps `txn`, `sub` and `aud`, may narrow the scope and add context, never widen or change it,
// and an expired token is never replaced. Requesters authenticate with a client JWT (RFC 7523).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::identity {

inline constexpr std::string_view token_exchange_grant =
    "urn:ietf:params:oauth:grant-type:token-exchange";
inline constexpr std::string_view txn_token_type = "urn:ietf:params:oauth:token-type:txn_token";
inline constexpr std::string_view jwt_client_assertion =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct TokenEndpointReply {
  unsigned status = 200;
  Json body;  // the token response, or {"error", "error_description"} (RFC 6749 §5.2)
};

class TokenExchange {
 public:
  // `client_keys`: the public keys of the workloads allowed to ask; each client JWT is signed by
  // one of them, with iss = sub = the client's id.
  TokenExchange(std::shared_ptr<const TransactionTokenService> service, KeySet client_keys);

  // One request to the endpoint. `endpoint_url` is accepted as a client JWT audience, besides
  // the trust domain.
  TokenEndpointReply handle(std::string_view content_type, std::string_view body,
                            std::string_view endpoint_url, std::int64_t now) const;

 private:
  std::shared_ptr<const TransactionTokenService> service_;
  KeySet client_keys_;
};

// application/x-www-form-urlencoded into name -> value; nullopt when malformed or a name repeats.
std::optional<std::map<std::string, std::string>> parse_form(std::string_view body);

}  // namespace membrane::identity
