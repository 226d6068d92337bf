#include "http/write_now.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace membrane::http {

std::pair<error_code, std::size_t> send_now(int socket,
                                            std::span<const asio::const_buffer> buffers) {
  std::array<iovec, 8> pieces{};
  msghdr message{};
  for (const auto& buffer : buffers) {
    if (buffer.size() == 0) continue;
    if (message.msg_iovlen == pieces.size()) break;  // the rest goes asynchronously
    pieces[message.msg_iovlen++] = iovec{const_cast<void*>(buffer.data()), buffer.size()};
  }
  if (message.msg_iovlen == 0) return {error_code(), 0};
  message.msg_iov = pieces.data();
  for (;;) {
    const ssize_t sent = ::sendmsg(socket, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) return {error_code(), static_cast<std::size_t>(sent)};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {error_code(), 0};
    return {error_code(errno, boost::system::system_category()), 0};
  }
}

}  // namespace membrane::http
