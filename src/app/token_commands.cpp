#include "membrane/app/token_commands.hpp"
#include "membrane/core/json.hpp"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>

#include "membrane/audit/audit_log.hpp"
#include "membrane/identity/jwt.hpp"
#include "membrane/identity/transaction_tokens.hpp"

namespace membrane::app {
namespace {

using identity::Json;

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::int64_t now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

}  // namespace

int token_mint(const CommandLine::Token& options) {
  std::vector<identity::Jwk> keys;
  try {
    keys = identity::TransactionTokenService::load_or_create_keys(options.key_file);
  } catch (const std::exception& error) {
    std::cerr << "membrane token mint: " << error.what() << "\n";
    return 1;
  }
  Json claims = Json::object();
  if (!options.claims_json.empty()) {
    claims = json::parse_or_discarded(options.claims_json);
    if (!claims.is_object()) {
      std::cerr << "membrane token mint: --claims must be a JSON object\n";
      return 1;
    }
  }
  const auto issued_at = now();
  claims["iat"] = issued_at;
  claims["exp"] = issued_at + options.lifetime_seconds;
  if (!options.subject.empty()) claims["sub"] = options.subject;
  if (!options.issuer.empty()) claims["iss"] = options.issuer;
  if (options.audiences.size() == 1) claims["aud"] = options.audiences.front();
  if (options.audiences.size() > 1) claims["aud"] = options.audiences;
  Json header = Json::object();
  if (!options.type.empty()) header["typ"] = options.type;
  std::cout << identity::sign_token(std::move(header), claims, keys.front()) << "\n";
  return 0;
}

// A JWKS file or a single JWK (such as a key file), for verifying; problems are printed.
std::optional<identity::KeySet> read_verification_keys(const std::string& path,
                                                       const char* command) {
  try {
    return identity::KeySet::read_file(path, true);
  } catch (const std::runtime_error& error) {
    std::cerr << command << ": " << error.what() << "\n";
    return std::nullopt;
  }
}

int audit_verify(const std::vector<std::string>& files, const std::string& jwks_file) {
  std::optional<identity::KeySet> keys;
  if (!jwks_file.empty()) {
    keys = read_verification_keys(jwks_file, "membrane audit verify");
    if (!keys) return 1;
  }
  const auto result = audit::verify_files(files, keys ? &*keys : nullptr);
  if (!result.ok) {
    std::cerr << result.file << ":" << result.line << ": " << result.problem << "\n";
    return 1;
  }
  std::cout << "ok: " << result.records << " records, chain intact";
  if (keys) std::cout << ", " << result.checkpoints << " signed checkpoint(s) verified";
  if (result.interrupted_writes)
    std::cout << "; " << result.interrupted_writes << " write(s) interrupted by a crash skipped";
  if (result.incomplete_tail)
    std::cout << "; the last line is incomplete (a write interrupted by a crash)";
  std::cout << "\n";
  if (keys && !result.ends_closed) {
    std::cout << "note: the log does not end with the signed checkpoint of a clean close: the "
                 "gateway is still running or did not stop cleanly, or lines after the last "
                 "checkpoint were removed\n";
  }
  return 0;
}

int audit_query(const std::vector<std::string>& files, const audit::QueryFilter& filter,
                bool json_output) {
  for (const auto& file : files) {
    if (!read_text(file)) {
      std::cerr << "membrane audit query: cannot read '" << file << "'\n";
      return 1;
    }
  }
  const auto records = audit::query_files(files, filter);
  if (json_output) {
    for (const auto& record : records)
      std::cout << record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  const auto cell = [](const Json& record, const char* key) {
    const auto it = record.find(key);
    if (it == record.end() || it->is_null()) return std::string("-");
    if (it->is_string()) return it->get<std::string>();
    if (it->is_array() && !it->empty() && it->front().is_string())
      return it->front().get<std::string>();
    return it->dump();
  };
  std::printf("%-24s %-16s %-24s %-14s %-22s %-7s %-24s %-20s %9s\n", "TIME", "IDENTITY", "TXN",
              "METHOD", "TOOL", "VERDICT", "RULE", "OUTCOME", "LATENCY");
  for (const auto& record : records) {
    std::printf("%-24s %-16s %-24s %-14s %-22s %-7s %-24s %-20s %7sus\n",
                cell(record, "time").c_str(), cell(record, "identity").c_str(),
                cell(record, "txn").c_str(), cell(record, "method").c_str(),
                cell(record, "tool").c_str(), cell(record, "verdict").c_str(),
                cell(record, "rules").c_str(), cell(record, "outcome").c_str(),
                cell(record, "latency_us").c_str());
  }
  std::printf("%zu record(s)\n", records.size());
  return 0;
}

int token_verify(const CommandLine::Token& options) {
  std::string token = options.token;
  if (token == "-") std::getline(std::cin, token);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  const auto loaded = read_verification_keys(options.jwks_file, "membrane token verify");
  if (!loaded) return 1;
  const identity::KeySet& keys = *loaded;
  identity::ClaimRequirements requirements;
  requirements.issuer = options.issuer;
  requirements.audiences = options.audiences;
  requirements.type = options.type;
  const auto check = identity::verify_token(token, keys, requirements, now());
  if (!check) {
    std::cerr << "invalid: " << check.error << "\n";
    // What the token claims, to help find out why it was refused; never trusted for anything.
    if (const auto decoded = identity::decode_unverified(token)) {
      std::cerr << "unverified contents: "
                << Json{{"header", decoded->header}, {"claims", decoded->claims}}.dump(2) << "\n";
    }
    return 1;
  }
  std::cout << Json{{"valid", true},
                    {"header", check.token->header},
                    {"claims", check.token->claims}}
                   .dump(2)
            << "\n";
  return 0;
}

}  // namespace membrane::app
