// libFuzzer target: a sealed session id (Mcp-Session-Id, the legacy transport's sessionId) or a
// sealed requestState, as a client hands it back, opened with a fixed key: SessionSealer::unseal
// for both transports and open_state. Forgeries cannot get past AES-GCM, so the step after it,
// claims_from_plaintext, is fuzzed on its own with the input as the decrypted text; claims it
// accepts must come back unchanged from seal() + unseal(). base64url_decode must accept only
// the canonical spelling (encode(decode(x)) == x).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_world.hpp"
#include "membrane/mcp/sealed_session.hpp"

namespace {

using namespace membrane::mcp;

constexpr std::string_view upstream = "fs";
constexpr std::string_view request_state_purpose = "request-state";

// JSON as it is written out: a number JSON cannot hold (1e400 parses as infinity) is null.
std::string text(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool same(const SessionClaims& a, const SessionClaims& b) {
  return a.upstream == b.upstream && a.upstream_session == b.upstream_session &&
         text(a.initialize_params) == text(b.initialize_params) &&
         text(a.client_capabilities) == text(b.client_capabilities) && a.subject == b.subject &&
         a.client_name == b.client_name && a.created_at == b.created_at &&
         a.protocol_version == b.protocol_version;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const SessionSealer sealer = SessionSealer::from_secret(membrane::fuzz::session_secret);
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  for (const auto transport : {SessionTransport::streamable_http, SessionTransport::legacy_sse}) {
    if (const auto claims = sealer.unseal(input, upstream, transport)) {
      if (claims->upstream != upstream) __builtin_trap();
    }
  }
  (void)sealer.open_state(input, request_state_purpose);

  if (const auto bytes = base64url_decode(input)) {
    if (base64url_encode(*bytes) != input) __builtin_trap();
  }

  if (const auto claims = claims_from_plaintext(input, upstream)) {
    for (const auto transport : {SessionTransport::streamable_http, SessionTransport::legacy_sse}) {
      const std::string sealed = sealer.seal(*claims, transport);
      const auto reopened = sealer.unseal(sealed, upstream, transport);
      if (!reopened || !same(*reopened, *claims)) __builtin_trap();
      // Bound to its upstream and its transport.
      if (sealer.unseal(sealed, "other", transport)) __builtin_trap();
    }
    (void)client_name_of(claims->initialize_params);
  }
  return 0;
}
