// The injector's serving certificate, re-read when its files change. cert-manager renews the
// Secret long before expiry and the kubelet swaps the mounted files; without a reload the
// injector would keep presenting the old certificate until it expired, and from then on every
// pod would be created by the failurePolicy instead of by the injector.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

namespace membrane::inject {

class ReloadingCertificate {
 public:
  // Reads both files now; throws std::runtime_error naming the file when they are unusable.
  ReloadingCertificate(std::string certificate_file, std::string private_key_file);
  ~ReloadingCertificate();
  ReloadingCertificate(const ReloadingCertificate&) = delete;
  ReloadingCertificate& operator=(const ReloadingCertificate&) = delete;

  // Every handshake on `context` then presents the current pair. This object must outlive the
  // context's connections.
  void serve_from(SSL_CTX* context);

  // Looks at the files (at most once per `min_interval`) and loads them when they changed and
  // form a valid pair; a broken pair is logged and the previous one stays. Returns true when a
  // new pair was loaded.
  bool refresh(std::chrono::steady_clock::duration min_interval = std::chrono::seconds(1));

  // SHA-256 of the certificate now served, hex, for logs and tests.
  std::string fingerprint() const;

  struct KeyPair;

 private:
  static int on_handshake(SSL* ssl, void* self);

  std::string certificate_file_;
  std::string private_key_file_;
  mutable std::mutex mutex_;
  std::shared_ptr<const KeyPair> current_;
  std::string files_state_;  // sizes and modification times when current_ was read
  std::chrono::steady_clock::time_point last_look_{};
};

}  // namespace membrane::inject
