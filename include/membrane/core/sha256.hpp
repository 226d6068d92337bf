// SHA-256 for the request path (session digests, audit lines, argument hashes). OpenSSL 3's
// one-shot SHA256() looks the algorithm up in its provider registry on every call, which costs
// more than hashing a session id; this one fetches it once and reuses a context per thread.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace membrane::core {

using Sha256Digest = std::array<unsigned char, 32>;

Sha256Digest sha256(std::string_view text);

// The first `bytes` bytes of the digest (at most 32), as lowercase hex: how logs, spans and audit
// records name a session without writing its id (a capability).
std::string sha256_hex(std::string_view text, std::size_t bytes = 32);
// The same into `hex`, whose buffer a caller hashing in a loop reuses.
void sha256_hex_into(std::string& hex, std::string_view text, std::size_t bytes = 32);

// sha256_hex(session_id, 8), the name of a session in spans and audit records, remembered per
// thread for the last few sessions: a session's calls come in runs, and each call would otherwise
// hash its id (hundreds of bytes when sealed) once for its span and once for its record.
std::string session_digest(std::string_view session_id);

}  // namespace membrane::core
