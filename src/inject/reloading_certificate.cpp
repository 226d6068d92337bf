#include "inject/reloading_certificate.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <stdexcept>

#include "membrane/core/log.hpp"

namespace membrane::inject {

namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * chain) const { sk_X509_pop_free(chain, X509_free); }
};

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data found";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// Size and modification time of both files: a renewal changes at least one of them.
std::string files_state(const std::string& certificate_file, const std::string& key_file) {
  std::string state;
  for (const auto* file : {&certificate_file, &key_file}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(*file, ec);
    const auto time = std::filesystem::last_write_time(*file, ec);
    state += std::to_string(ec ? 0 : size) + ":" +
             std::to_string(ec ? 0 : time.time_since_epoch().count()) + ";";
  }
  return state;
}

std::string sha256_hex(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  X509_digest(certificate, EVP_sha256(), digest, &length);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < length; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 15];
  }
  return hex;
}

}  // namespace

struct ReloadingCertificate::KeyPair {
  std::unique_ptr<X509, X509Free> leaf;
  std::unique_ptr<STACK_OF(X509), ChainFree> chain;  // intermediates, may be empty
  std::unique_ptr<EVP_PKEY, KeyFree> key;
};

namespace {

std::shared_ptr<const ReloadingCertificate::KeyPair> read_key_pair(
    const std::string& certificate_file, const std::string& key_file) {
  auto pair = std::make_shared<ReloadingCertificate::KeyPair>();
  std::unique_ptr<BIO, BioFree> certificates(BIO_new_file(certificate_file.c_str(), "r"));
  if (!certificates) {
    throw std::runtime_error("cannot read TLS certificate '" + certificate_file +
                             "': " + openssl_error());
  }
  pair->leaf.reset(PEM_read_bio_X509_AUX(certificates.get(), nullptr, nullptr, nullptr));
  if (!pair->leaf) {
    throw std::runtime_error("cannot load TLS certificate '" + certificate_file +
                             "': " + openssl_error());
  }
  pair->chain.reset(sk_X509_new_null());
  while (X509* intermediate = PEM_read_bio_X509(certificates.get(), nullptr, nullptr, nullptr))
    sk_X509_push(pair->chain.get(), intermediate);
  ERR_clear_error();  // the end of the file reads as an error

  std::unique_ptr<BIO, BioFree> key(BIO_new_file(key_file.c_str(), "r"));
  if (key) pair->key.reset(PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr));
  if (!pair->key) {
    throw std::runtime_error("cannot load TLS private key '" + key_file + "': " + openssl_error());
  }
  if (X509_check_private_key(pair->leaf.get(), pair->key.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TLS private key '" + key_file + "' does not match certificate '" +
                             certificate_file + "'");
  }
  return pair;
}

}  // namespace

ReloadingCertificate::ReloadingCertificate(std::string certificate_file,
                                           std::string private_key_file)
    : certificate_file_(std::move(certificate_file)),
      private_key_file_(std::move(private_key_file)),
      current_(read_key_pair(certificate_file_, private_key_file_)),
      files_state_(files_state(certificate_file_, private_key_file_)),
      last_look_(std::chrono::steady_clock::now()) {}

ReloadingCertificate::~ReloadingCertificate() = default;

void ReloadingCertificate::serve_from(SSL_CTX* context) {
  SSL_CTX_set_cert_cb(context, &ReloadingCertificate::on_handshake, this);
}

bool ReloadingCertificate::refresh(std::chrono::steady_clock::duration min_interval) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_look_ < min_interval) return false;
  last_look_ = now;
  const std::string state = files_state(certificate_file_, private_key_file_);
  if (state == files_state_) return false;
  try {
    current_ = read_key_pair(certificate_file_, private_key_file_);
    files_state_ = state;
  } catch (const std::exception& error) {
    // Mid-rotation (one file written, not yet the other) this heals at the next look.
    log::warn(
        "inject: TLS files changed but cannot be used yet; still serving the previous "
        "certificate: ",
        error.what());
    return false;
  }
  log::info("inject: TLS certificate reloaded from ", certificate_file_, " (sha256 ",
            sha256_hex(current_->leaf.get()), ")");
  return true;
}

std::string ReloadingCertificate::fingerprint() const {
  std::shared_ptr<const KeyPair> pair;
  {
    std::lock_guard lock(mutex_);
    pair = current_;
  }
  return sha256_hex(pair->leaf.get());
}

int ReloadingCertificate::on_handshake(SSL* ssl, void* self) {
  auto& certificate = *static_cast<ReloadingCertificate*>(self);
  certificate.refresh();
  std::shared_ptr<const KeyPair> pair;
  {
    std::lock_guard lock(certificate.mutex_);
    pair = certificate.current_;
  }
  // SSL_use_cert_and_key takes its own references; the pair may be replaced right after.
  return SSL_use_cert_and_key(ssl, pair->leaf.get(), pair->key.get(), pair->chain.get(),
                              /*override=*/1) == 1
             ? 1
             : 0;
}

}  // namespace membrane::inject
