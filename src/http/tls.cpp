#include "http/tls.hpp"

#include <stdexcept>

namespace membrane::http {
namespace ssl = boost::asio::ssl;

namespace {
void harden(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                      ssl::context::single_dh_use);
}
}  // namespace

std::shared_ptr<ssl::context> make_server_tls_context(const std::string& certificate_file,
                                                      const std::string& private_key_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  harden(*context);
  // OpenSSL frees a connection's record buffers while nothing is in flight (as nginx does): an
  // idle keep-alive connection does not hold ~34 KiB of them.
  SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  boost::system::error_code ec;
  context->use_certificate_chain_file(certificate_file, ec);
  if (ec)
    throw std::runtime_error("cannot load TLS certificate '" + certificate_file +
                             "': " + ec.message());
  context->use_private_key_file(private_key_file, ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error("cannot load TLS private key '" + private_key_file +
                             "': " + ec.message());
  return context;
}

std::shared_ptr<ssl::context> make_client_tls_context(const std::string& ca_file, bool verify) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  harden(*context);
  boost::system::error_code ec;
  context->set_default_verify_paths(ec);
  if (!ca_file.empty()) {
    context->load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error("cannot load CA file '" + ca_file + "': " + ec.message());
  }
  context->set_verify_mode(verify ? ssl::verify_peer : ssl::verify_none);
  return context;
}

}  // namespace membrane::http
