#include "membrane/identity/token_exchange.hpp"
#include "membrane/core/ascii.hpp"
#include "membrane/core/json.hpp"

#include <algorithm>

namespace membrane::identity {
namespace {

TokenEndpointReply error_reply(unsigned status, std::string_view error, std::string description) {
  return {status, {{"error", error}, {"error_description", std::move(description)}}};
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = ascii::hex_value(text[i + 1]);
      const int low = ascii::hex_value(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// A string claim, or "" when absent or not a string (claims are data, never trusted for type).
std::string text(const Json& object, const char* key) {
  return std::string(json::string_member(object, key));
}

Json object_claim(const Json& claims, const char* key) {
  const auto it = claims.find(key);
  return it != claims.end() && it->is_object() ? *it : Json::object();
}

// Adds the entries of the JSON object in `field_text` (a form field) to `target`. With
// `refuse_changes`, an entry that would change an existing value refuses the request.
std::optional<TokenEndpointReply> add_entries(Json& target, const std::string& field_text,
                                              std::string_view field_name, bool refuse_changes) {
  if (field_text.empty()) return std::nullopt;
  const Json added = json::parse_or_discarded(field_text);
  if (!added.is_object()) {
    return error_reply(400, "invalid_request", std::string(field_name) + " must be a JSON object");
  }
  for (const auto& [key, value] : added.items()) {
    if (target.contains(key) && target[key] != value) {
      if (!refuse_changes) continue;
      return error_reply(400, "invalid_request",
                         std::string(field_name) + " would change the transaction context '" + key +
                             "'; a replacement may only add to it");
    }
    target[key] = value;
  }
  return std::nullopt;
}

std::vector<std::string> split_scope(std::string_view scope) {
  return token_scopes({{"scope", std::string(scope)}});
}

}  // namespace

std::optional<std::map<std::string, std::string>> parse_form(std::string_view body) {
  std::map<std::string, std::string> fields;
  while (!body.empty()) {
    const auto amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    auto name = percent_decode(pair.substr(0, equals));
    auto value = percent_decode(equals == std::string_view::npos ? std::string_view()
                                                                 : pair.substr(equals + 1));
    if (!name || !value || name->empty()) return std::nullopt;
    if (!fields.emplace(std::move(*name), std::move(*value)).second) return std::nullopt;
  }
  return fields;
}

TokenExchange::TokenExchange(std::shared_ptr<const TransactionTokenService> service,
                             KeySet client_keys)
    : service_(std::move(service)), client_keys_(std::move(client_keys)) {}

TokenEndpointReply TokenExchange::handle(std::string_view content_type, std::string_view body,
                                         std::string_view endpoint_url, std::int64_t now) const {
  if (content_type.substr(0, content_type.find(';')) != "application/x-www-form-urlencoded") {
    return error_reply(400, "invalid_request",
                       "the body must be application/x-www-form-urlencoded (RFC 8693)");
  }
  const auto form = parse_form(body);
  if (!form) return error_reply(400, "invalid_request", "malformed form body or a repeated field");
  const auto field = [&](const char* name) {
    const auto it = form->find(name);
    return it == form->end() ? std::string() : it->second;
  };

  // Who asks: a workload of the trust domain proving itself with a client JWT.
  if (field("client_assertion_type") != jwt_client_assertion || field("client_assertion").empty()) {
    return error_reply(401, "invalid_client",
                       "authenticate with client_assertion_type=" +
                           std::string(jwt_client_assertion) + " and a client_assertion JWT");
  }
  ClaimRequirements client_requirements;
  client_requirements.audiences = {service_->options().trust_domain, std::string(endpoint_url)};
  client_requirements.leeway = std::chrono::seconds(30);
  const auto client =
      verify_token(field("client_assertion"), client_keys_, client_requirements, now);
  if (!client) return error_reply(401, "invalid_client", "client assertion: " + client.error);
  const Json& assertion = client.token->claims;
  const std::string client_id = text(assertion, "iss");
  if (client_id.empty() || text(assertion, "sub") != client_id ||
      (!field("client_id").empty() && field("client_id") != client_id)) {
    return error_reply(401, "invalid_client",
                       "client assertion: iss and sub must both be the client's id");
  }

  if (field("grant_type") != token_exchange_grant) {
    return error_reply(400, "unsupported_grant_type",
                       "grant_type must be " + std::string(token_exchange_grant));
  }
  if (field("requested_token_type") != txn_token_type) {
    return error_reply(400, "invalid_request",
                       "requested_token_type must be " + std::string(txn_token_type));
  }
  if (field("subject_token").empty() || field("subject_token_type") != txn_token_type) {
    return error_reply(
        400, "invalid_request",
        "a replacement needs subject_token with subject_token_type " + std::string(txn_token_type));
  }
  const auto subject = service_->verify(field("subject_token"), now);
  if (!subject) {
    return error_reply(400, "invalid_grant",
                       "the subject token is not acceptable: " + subject.error);
  }
  const Json& original = subject.token->claims;

  // Scope may only narrow.
  const auto granted = split_scope(text(original, "scope"));
  std::string scope = text(original, "scope");
  if (const std::string asked = field("scope"); !asked.empty()) {
    for (const auto& wanted : split_scope(asked)) {
      if (std::find(granted.begin(), granted.end(), wanted) == granted.end()) {
        return error_reply(400, "invalid_scope",
                           "scope '" + wanted +
                               "' is not in the transaction's scope; a "
                               "replacement may only narrow it");
      }
    }
    scope = asked;
  }

  // Context may be added to, never changed (tctx); the requester's context only gains entries.
  Json context = object_claim(original, "tctx");
  if (auto refused = add_entries(context, field("request_details"), "request_details", true))
    return std::move(*refused);
  Json requester = object_claim(original, "rctx");
  if (auto refused = add_entries(requester, field("request_context"), "request_context", false))
    return std::move(*refused);
  requester["replaced_by"] = client_id;

  TransactionRequest replacement;
  replacement.txn = text(original, "txn");
  replacement.subject = text(original, "sub");
  replacement.scope = scope;
  replacement.context = std::move(context);
  replacement.requester = std::move(requester);
  // Never outlive the token it replaces.
  if (const auto expiry = numeric_date(original, "exp")) replacement.expires_at = *expiry;
  auto issued = service_->issue(replacement, now);
  return {200,
          {{"access_token", issued.token},
           {"issued_token_type", txn_token_type},
           {"token_type", "N_A"},
           {"expires_in", issued.claims["exp"].get<std::int64_t>() - now}}};
}

}  // namespace membrane::identity
