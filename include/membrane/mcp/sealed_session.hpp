// The downstream Mcp-Session-Id is not a lookup key into gateway memory: it is the session state
// itself, sealed with AES-256-GCM. Any gateway replica holding the same key can open it, so a
// restarted or second replica serves the session without sticky routing or a shared store.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace membrane::mcp {

// Which downstream transport a session belongs to; a legacy /sse session id is useless on /mcp
// and vice versa (it is bound into the AEAD associated data).
enum class SessionTransport { streamable_http, legacy_sse };

struct SessionClaims {
  std::string upstream;          // upstream name the session was opened on (also bound as AAD)
  std::string upstream_session;  // upstream's Mcp-Session-Id (HTTP) or instance id (stdio)
  // The client's `initialize` params, so a stateful upstream that lost the session (a stdio
  // child on another replica, or after a restart) can be re-initialized transparently.
  nlohmann::json initialize_params;
  // The client's declared capabilities (initialize params.capabilities): whether the gateway
  // itself may ask the client something, e.g. an approval through elicitation.
  nlohmann::json client_capabilities;
  // The authenticated caller who opened the session (`sub`); empty when auth is off. A session
  // only serves the caller who opened it.
  std::string subject;
  // The client's self-declared name (initialize params.clientInfo.name), for the record only.
  std::string client_name;
  std::int64_t created_at = 0;  // unix seconds
  // The revision the client negotiated, when the gateway answered initialize itself (the upstream
  // speaks 2026-07-28 and has no session to remember it).
  std::string protocol_version;
};

class SessionSealer {
 public:
  static constexpr std::size_t key_size = 32;

  // Derives the sealing key from operator-provided secret material (HKDF-SHA256). Throws
  // std::invalid_argument when the secret is shorter than 16 bytes.
  static SessionSealer from_secret(std::string_view secret);
  // A random key: sessions will not survive a restart.
  static SessionSealer random();

  std::string seal(const SessionClaims& claims, SessionTransport transport) const;
  // nullopt when the id was not sealed by this key, was altered, belongs to another upstream or
  // transport, or is malformed. Never throws.
  std::optional<SessionClaims> unseal(std::string_view sealed, std::string_view upstream,
                                      SessionTransport transport) const;

  // Any other state the gateway hands a client to carry and give back (a 2026-07-28
  // `requestState`): sealed the same way, bound to `purpose`, opened only by a replica holding the
  // key. open_state never throws; nullopt when altered, forged or sealed for another purpose.
  std::string seal_state(const nlohmann::json& payload, std::string_view purpose) const;
  std::optional<nlohmann::json> open_state(std::string_view sealed, std::string_view purpose) const;

 private:
  std::string seal_bytes(std::string_view plaintext, std::string_view aad) const;
  std::optional<std::string> open_bytes(std::string_view sealed, std::string_view aad) const;

  explicit SessionSealer(const std::array<unsigned char, key_size>& key) : key_(key) {}
  std::array<unsigned char, key_size> key_;
};

// The claims in the decrypted text of a sealed id (what SessionSealer::unseal reads once the id
// opened); nullopt when the text does not hold claims as seal() writes them. Never throws.
std::optional<SessionClaims> claims_from_plaintext(std::string_view plaintext,
                                                   std::string_view upstream);

// Base64url without padding (RFC 4648 §5): every character is a visible ASCII character, as the
// MCP spec requires of session ids.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

// initialize params.clientInfo.name (at most 128 bytes), or "" when absent.
std::string client_name_of(const nlohmann::json& initialize_params);

// Random bytes from the OS CSPRNG (OpenSSL RAND_bytes). Throws std::runtime_error on failure.
std::string random_bytes(std::size_t count);

}  // namespace membrane::mcp
