// Backend selection: the only #if ladder over backends.
#include "backend.hpp"
#include "socket_ops.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <mutex>

namespace sluice::detail {

#if SLUICE_HAVE_URING
result<std::unique_ptr<backend>> make_uring_backend(io_context& io);
#endif
#if SLUICE_HAVE_ASIO
result<std::unique_ptr<backend>> make_asio_backend(io_context& io);
#endif
#if SLUICE_HAVE_IOCP
result<std::unique_ptr<backend>> make_iocp_backend(io_context& io);
#endif

namespace {
constexpr std::string_view built_in =
#if SLUICE_HAVE_URING
    "uring "
#endif
#if SLUICE_HAVE_ASIO
    "asio "
#endif
#if SLUICE_HAVE_IOCP
    "iocp "
#endif
    "";
} // namespace

result<std::unique_ptr<backend>> make_backend(io_context& io, std::string_view name) {
  [[maybe_unused]] const bool any = name.empty();
#if SLUICE_HAVE_IOCP
  if (any || name == "iocp") return make_iocp_backend(io);
#endif
#if SLUICE_HAVE_URING
  if (any || name == "uring") {
    auto r = make_uring_backend(io);
    if (r || !any) return r;
#if SLUICE_HAVE_ASIO
    // Not a silent fallback: say once per process why io_uring is not used.
    static std::once_flag once;
    std::call_once(once, [&] {
      fmt::print(stderr, "sluice: {}; using the asio backend\n", r.error().context());
    });
#endif
  }
#endif
#if SLUICE_HAVE_ASIO
  if (any || name == "asio") return make_asio_backend(io);
#endif
  if (any) return error(errc::backend_unavailable, "no backend could start on this machine");
  if (name == "uring" || name == "asio" || name == "iocp")
    return error(
        errc::backend_unavailable,
        fmt::format("backend '{}' is not built into this sluice (built in: {})", name, built_in));
  return error(
      errc::unsupported_backend,
      fmt::format("SLUICE_BACKEND='{}' names no backend (known: uring, asio, iocp)", name));
}

void backend::discard(operation& op) noexcept {
  if (op.error) return; // nothing was produced
  switch (op.code) {
  case op_code::accept:
    if (op.res >= 0) sys::close(static_cast<native_handle>(op.res));
    break;
  case op_code::recv_lent:
    if (op.res > 0) buffers().give_back(op.lent_id);
    break;
  case op_code::recv_message: { // descriptors nobody took
    const auto& m = *static_cast<const message*>(op.buffer);
    sys::close_fds(m.control, m.control_length);
    break;
  }
  default: break;
  }
}

void sys::finish_datagram(std::byte* buf, std::size_t size, std::uint32_t name_length,
                          std::size_t whole, bool truncated) noexcept {
  datagram_header h{};
  h.name_length = std::min<std::uint32_t>(name_length, datagram_name_room);
  h.whole_size = static_cast<std::uint32_t>(whole);
  h.flags = truncated || whole > size - datagram_payload_offset ? datagram_truncated : 0;
  std::memcpy(buf, &h, sizeof h);
}

} // namespace sluice::detail
