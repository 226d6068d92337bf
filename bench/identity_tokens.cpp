// Cost per call of the identity work the gateway adds: verifying the caller's bearer token (first
// time, and from the per-thread cache on a session's later requests), minting the transaction
// token of a call, and verifying an incoming one. Baseline in the same run: SHA-256 of a
// token-sized input, the cheapest cryptographic step any of them contains.
//   build/bench/membrane_bench_identity [--iterations N]
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "membrane/identity/authenticator.hpp"
#include "membrane/identity/transaction_tokens.hpp"

using namespace membrane::identity;

namespace {

struct Measured {
  double median_ns;
  double p99_ns;
};

// Times `operation` one call at a time; 5 rounds, the median round's figures.
Measured measure(int iterations, const std::function<void(int)>& operation) {
  std::vector<double> medians, p99s;
  std::vector<std::int64_t> samples(static_cast<std::size_t>(iterations));
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < iterations; ++i) {
      const auto start = std::chrono::steady_clock::now();
      operation(i);
      samples[static_cast<std::size_t>(i)] = (std::chrono::steady_clock::now() - start).count();
    }
    std::sort(samples.begin(), samples.end());
    medians.push_back(static_cast<double>(samples[samples.size() / 2]));
    p99s.push_back(static_cast<double>(samples[samples.size() * 99 / 100]));
  }
  std::sort(medians.begin(), medians.end());
  std::sort(p99s.begin(), p99s.end());
  return {medians[2], p99s[2]};
}

Json claims_for(std::int64_t now) {
  return {{"iss", "https://idp.example"},
          {"aud", "https://gw.example/mcp"},
          {"sub", "alice"},
          {"iat", now},
          {"exp", now + 600},
          {"scope", "mcp customer:read"}};
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 2000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0)
      iterations = std::max(100, std::atoi(argv[i + 1]));
  }
  const std::int64_t now = std::time(nullptr);
  std::printf("| operation | median µs | p99 µs | × SHA-256 baseline |\n|---|---:|---:|---:|\n");
  const std::string input(600, 'x');
  const auto baseline = measure(iterations, [&](int) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  });
  const auto row = [&](const char* name, const Measured& m) {
    std::printf("| %s | %.2f | %.2f | %.1f× |\n", name, m.median_ns / 1000, m.p99_ns / 1000,
                m.median_ns / baseline.median_ns);
  };
  row("SHA-256 of 600 bytes (baseline)", baseline);

  for (const char* algorithm : {"RS256", "ES256", "EdDSA"}) {
    const Jwk key = Jwk::generate(algorithm, "k1");
    std::string error;
    const KeySet keys({*Jwk::from_json(key.public_json(), error)});
    const std::string token = sign_token({}, claims_for(now), key);
    ClaimRequirements requirements;
    requirements.issuer = "https://idp.example";
    requirements.audiences = {"https://gw.example/mcp"};
    row((std::string("bearer ") + algorithm + ": verify signature and claims").c_str(),
        measure(iterations, [&](int) {
          if (!verify_token(token, keys, requirements, now)) std::abort();
        }));
    row((std::string("sign a JWT with ") + algorithm).c_str(),
        measure(iterations, [&](int) { (void)sign_token({}, claims_for(now), key); }));
  }

  // A session's later requests: the token is found in the per-thread cache.
  const Jwk idp = Jwk::generate_es256("idp");
  AuthenticatorOptions auth_options;
  auth_options.issuer = "https://idp.example";
  auth_options.audiences = {"https://gw.example/mcp"};
  auth_options.keys = KeySet({idp});
  const Authenticator authenticator(auth_options);
  const std::string header = "Bearer " + sign_token({}, claims_for(now), idp);
  const std::vector<std::string> no_scopes;
  row("bearer ES256: a session's next request (cached)", measure(iterations, [&](int) {
        if (!authenticator.authenticate(header, no_scopes, now)) std::abort();
      }));

  TransactionTokenOptions txn_options;
  txn_options.trust_domain = "bank.example";
  txn_options.signing_keys = {Jwk::generate_es256("txn")};
  const TransactionTokenService service(txn_options);
  TransactionRequest request;
  request.subject = "alice";
  request.scope = "mcp";
  request.context = {{"method", "tools/call"},
                     {"server", "crm"},
                     {"tool", "lookup_customer"},
                     {"customer_id", "c-1"}};
  request.requester = {{"client_ip", "10.0.0.7"}, {"authn", "bearer-jwt"}};
  row("mint a transaction token (ES256)",
      measure(iterations, [&](int) { (void)service.issue(request, now); }));
  const std::string txn = service.issue(request, now).token;
  row("verify an incoming transaction token", measure(iterations, [&](int) {
        if (!service.verify(txn, now)) std::abort();
      }));
  return 0;
}
