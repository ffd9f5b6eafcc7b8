// The portable error category. It stays free of OS headers: errno values are compared
// through std::errc (and <cerrno> for the few std::errc lacks), Winsock values by
// number. Winsock codes are all >= 10000 and errno values are small, so one table
// serves every platform without an #if.
#include <sluice/error.hpp>

#include <cerrno>

namespace sluice {
namespace {

struct equivalence {
  errc ours;
  int posix;   // a std::errc value, or 0
  int winsock; // a WSA* / Win32 value, or 0
  int extra;   // one more errno value std::errc does not name, or 0
};

#ifdef ESHUTDOWN
constexpr int eshutdown = ESHUTDOWN;
#else
constexpr int eshutdown = 0;
#endif

constexpr equivalence table[] = {
    {errc::not_initialised, 0, 10093, 0},
    {errc::network_down, int(std::errc::network_down), 10050, 0},
    {errc::buffer_too_small, 0, 10014, 0},
    {errc::no_protocol_option, int(std::errc::no_protocol_option), 10042, 0},
    {errc::in_progress, 0, 10036, 0},
    {errc::not_connected, int(std::errc::not_connected), 10057, 0},
    {errc::not_a_socket, int(std::errc::not_a_socket), 10038, int(std::errc::bad_file_descriptor)},
    {errc::shut_down, 0, 10058, eshutdown},
    {errc::connection_refused, int(std::errc::connection_refused), 10061, 1225},
    {errc::connection_reset, int(std::errc::connection_reset), 10054, 0},
    {errc::connection_aborted, int(std::errc::connection_aborted), 10053, 1236},
    {errc::broken_pipe, int(std::errc::broken_pipe), 0, 0},
    {errc::timed_out, int(std::errc::timed_out), 10060, 1460},
    {errc::operation_aborted, int(std::errc::operation_canceled), 995, 0},
    {errc::address_in_use, int(std::errc::address_in_use), 10048, 0},
    {errc::address_not_available, int(std::errc::address_not_available), 10049, 0},
    {errc::already_connected, int(std::errc::already_connected), 10056, 0},
    {errc::network_unreachable, int(std::errc::network_unreachable), 10051, 1231},
    {errc::host_unreachable, int(std::errc::host_unreachable), 10065, 1232},
    {errc::too_many_open_files, int(std::errc::too_many_files_open), 10024,
     int(std::errc::too_many_files_open_in_system)},
    {errc::message_too_large, int(std::errc::message_size), 10040, 0}, // EMSGSIZE, WSAEMSGSIZE
};

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "sluice"; }

  std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
    case errc::not_initialised: return "no live io_context (not initialised)";
    case errc::network_down: return "network subsystem is down";
    case errc::buffer_too_small: return "buffer too small for the pending disconnect data";
    case errc::no_protocol_option: return "transport carries no disconnect data";
    case errc::in_progress: return "another recv_disconnect is in progress on this socket";
    case errc::not_connected: return "socket is not connected";
    case errc::not_a_socket: return "not a socket (closed or moved-from)";
    case errc::shut_down: return "that direction of the socket has been shut down";
    case errc::connection_refused: return "connection refused";
    case errc::connection_reset: return "connection reset by peer";
    case errc::connection_aborted: return "connection aborted";
    case errc::broken_pipe: return "broken pipe (peer closed)";
    case errc::timed_out: return "timed out";
    case errc::operation_aborted: return "operation aborted";
    case errc::address_in_use: return "address already in use";
    case errc::address_not_available: return "address not available";
    case errc::already_connected: return "socket is already connected";
    case errc::network_unreachable: return "network unreachable";
    case errc::host_unreachable: return "host unreachable";
    case errc::invalid_endpoint: return "invalid endpoint";
    case errc::backend_unavailable: return "backend unavailable";
    case errc::unsupported_backend: return "unknown backend";
    case errc::too_many_open_files: return "too many open files";
    case errc::protocol_error: return "protocol error";
    case errc::message_too_large: return "message too large";
    case errc::end_of_stream: return "end of stream";
    case errc::host_not_found: return "host not found";
    case errc::channel_closed: return "channel closed";
    }
    return "unknown sluice error " + std::to_string(v);
  }

  bool equivalent(const std::error_code& code, int condition) const noexcept override {
    if (code.category() == *this) return code.value() == condition;
    for (const auto& e : table) {
      if (static_cast<int>(e.ours) != condition) continue;
      if (e.posix != 0 && code == static_cast<std::errc>(e.posix)) return true;
      const bool native = code.category() == std::system_category();
      if (native && e.winsock != 0 && code.value() == e.winsock) return true;
      if (e.extra != 0 &&
          (code == static_cast<std::errc>(e.extra) || (native && code.value() == e.extra)))
        return true;
      return false;
    }
    return false;
  }
};

} // namespace

const std::error_category& error_category() noexcept {
  static const category c;
  return c;
}

std::string error::message() const {
  if (context_.empty()) return code_.message();
  return context_ + ": " + code_.message();
}

} // namespace sluice
