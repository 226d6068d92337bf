// OpenSSL contexts for the TLS listener and for HTTPS upstreams.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace membrane::http {

// TLS 1.2+ server context from PEM files. Throws std::runtime_error naming the file on failure.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(
    const std::string& certificate_file, const std::string& private_key_file);

// TLS 1.2+ client context that verifies the peer against the system trust store plus `ca_file`
// (when not empty). `verify` = false disables verification (logged loudly by the caller).
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(const std::string& ca_file,
                                                                   bool verify);

}  // namespace membrane::http
