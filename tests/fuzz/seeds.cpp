// Writes the seed inputs that must be signed or sealed by the gateway's own code with the keys the
// fuzz targets use (fuzz_world.hpp), so that mutations of them reach
// the checks after a signature or a decryption:
//   membrane_fuzz_seeds tests/fuzz/corpus
// writes <dir>/jwt/gen-* (access tokens, transaction tokens, token-exchange form bodies) and
// <dir>/sealed_session/gen-* (session ids, request states, claims as sealed). Run it again after
// changing a key or the token format, and commit what it wrote.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "fuzz_world.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace {

using namespace membrane;
using identity::Json;

void write(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

std::string form_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  }
  return out;
}

std::string form(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields)
    out += (out.empty() ? "" : "&") + name + "=" + form_encode(value);
  return out;
}

void jwt_seeds(const std::filesystem::path& dir) {
  const fuzz::IdentityWorld world;
  const identity::Jwk issuer_key = fuzz::key(fuzz::es256_jwk);
  const identity::Jwk client_key = fuzz::key(fuzz::client_jwk);
  const std::string issuer(fuzz::issuer), audience(fuzz::audience);
  const auto now = fuzz::now;

  write(dir / "gen-access-token", identity::sign_token({{"typ", "at+jwt"}},
                                                       {{"iss", issuer},
                                                        {"sub", "alice"},
                                                        {"aud", audience},
                                                        {"iat", now - 60},
                                                        {"exp", now + 3600},
                                                        {"scope", "mcp tools"},
                                                        {"client_id", "agent-1"}},
                                                       issuer_key));
  write(dir / "gen-access-token-scp", identity::sign_token({},
                                                           {{"iss", issuer},
                                                            {"sub", "bob"},
                                                            {"aud", {"other", audience}},
                                                            {"nbf", now - 10},
                                                            {"exp", now + 60.5},
                                                            {"scp", {"mcp", "tools"}},
                                                            {"azp", "agent-2"},
                                                            {"groups", {"admins"}}},
                                                           issuer_key));
  write(dir / "gen-access-token-expired", identity::sign_token({},
                                                               {{"iss", issuer},
                                                                {"sub", "carol"},
                                                                {"aud", audience},
                                                                {"exp", now - 3600},
                                                                {"scope", "mcp"}},
                                                               issuer_key));

  identity::TransactionRequest transaction;
  transaction.subject = "alice";
  transaction.scope = "read write";
  transaction.context = {{"tool", "read_file"}, {"server", "fs"}};
  transaction.requester = {{"req_ip", "127.0.0.1"}, {"authn", "bearer-jwt"}};
  const auto txn = world.transaction_tokens->issue(transaction, now);
  write(dir / "gen-txn-token", txn.token);

  const std::string client_assertion = identity::sign_token({},
                                                            {{"iss", fuzz::client_id},
                                                             {"sub", fuzz::client_id},
                                                             {"aud", fuzz::trust_domain},
                                                             {"iat", now},
                                                             {"exp", now + 120},
                                                             {"jti", "seed-1"}},
                                                            client_key);
  const std::string assertion_type(identity::jwt_client_assertion);
  const std::string token_type(identity::txn_token_type);
  write(dir / "gen-token-exchange",
        form({{"grant_type", std::string(identity::token_exchange_grant)},
              {"requested_token_type", token_type},
              {"subject_token", txn.token},
              {"subject_token_type", token_type},
              {"client_assertion_type", assertion_type},
              {"client_assertion", client_assertion},
              {"scope", "read"},
              {"request_details", R"({"table":"orders"})"},
              {"request_context", R"({"workload":"db-proxy"})"}}));
  write(dir / "gen-token-exchange-widen",
        form({{"client_assertion_type", assertion_type},
              {"client_assertion", client_assertion},
              {"grant_type", std::string(identity::token_exchange_grant)},
              {"requested_token_type", token_type},
              {"subject_token", txn.token},
              {"subject_token_type", token_type},
              {"scope", "read admin"},
              {"request_details", R"({"tool":"write_file"})"}}));
}

void sealed_session_seeds(const std::filesystem::path& dir) {
  const auto sealer = mcp::SessionSealer::from_secret(fuzz::session_secret);
  mcp::SessionClaims http;
  http.upstream = "fs";
  http.upstream_session = "8c5b6a1e-upstream-session";
  http.subject = "alice";
  http.client_capabilities = {{"elicitation", Json::object()}};
  http.client_name = "claude-code";
  http.created_at = fuzz::now;
  write(dir / "gen-session-http", sealer.seal(http, mcp::SessionTransport::streamable_http));
  write(dir / "gen-session-legacy", sealer.seal(http, mcp::SessionTransport::legacy_sse));

  mcp::SessionClaims stdio = http;
  stdio.upstream_session = "instance-42";
  stdio.initialize_params = {
      {"protocolVersion", "2025-11-25"},
      {"capabilities", {{"roots", {{"listChanged", true}}}, {"sampling", Json::object()}}},
      {"clientInfo", {{"name", "inspector"}, {"version", "0.16.2"}}}};
  stdio.protocol_version = "2025-11-25";
  write(dir / "gen-session-stdio", sealer.seal(stdio, mcp::SessionTransport::streamable_http));

  write(dir / "gen-request-state", sealer.seal_state({{"up", "fs"},
                                                      {"sub", "alice"},
                                                      {"d", "3f1c"},
                                                      {"x", fuzz::now + 600},
                                                      {"rl", true},
                                                      {"ask", true}},
                                                     "request-state"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: membrane_fuzz_seeds CORPUS_DIR (tests/fuzz/corpus)\n";
    return 2;
  }
  const std::filesystem::path corpus = argv[1];
  jwt_seeds(corpus / "jwt");
  sealed_session_seeds(corpus / "sealed_session");
  std::cout << "wrote seeds under " << corpus.string() << "\n";
  return 0;
}
