#include <sluice/net/framed.hpp>

#include "layered_close.hpp"
#include <sluice/net/transports.hpp>
#include <sluice/net/websocket.hpp>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <sluice/timer.hpp>

namespace sluice {

namespace framing = proto::framing;

std::span<const transport_info> transports() noexcept {
  static constexpr transport_info list[] = {
      {"tcp", tcp::stream::carries_disconnect_data(), "TCP byte stream (tcp::stream)"},
      {"framed", framed_stream::carries_disconnect_data(),
       "sluice framing over TCP: messages and a CLOSE frame with disconnect data "
       "(framed_stream, docs/framing.md)"},
      {"websocket", websocket::stream::carries_disconnect_data(),
       "WebSocket (RFC 6455) over TCP: the close frame's code and reason are the disconnect "
       "data (websocket::stream, docs/websocket.md)"},
  };
  return list;
}

framed_stream::framed_stream(tcp::stream s, framing::limits l)
    : s_(std::move(s)), conn_(l), in_(64 * 1024) {}

task<result<void>> framed_stream::send(std::span<const std::byte> message) {
  if (message.size() > conn_.frame_limits().max_message)
    co_return error(errc::message_too_large,
                    fmt::format("framed send: message of {} bytes exceeds the limit of {}",
                                message.size(), conn_.frame_limits().max_message));
  if (conn_.local_closed()) co_return error(errc::shut_down, "framed send: after send_disconnect");
  // The header lives in this coroutine's frame and the payload where the caller keeps
  // it: concurrent sends share no buffer, and the stream's sender queue keeps each
  // frame whole.
  // (Named arrays, not a braced list in the co_await: GCC 12 cannot keep an
  // initializer_list's array across the suspension.)
  const framing::header head = conn_.message_header(message.size());
  const std::array<std::span<const std::byte>, 2> parts{std::span<const std::byte>(head), message};
  auto r = co_await s_.send_all(std::span(parts));
  if (!r) co_return std::move(r).error();
  co_return result<void>();
}

task<result<std::optional<std::vector<std::byte>>>> framed_stream::recv() {
  for (;;) {
    // After recv_disconnect nothing more is delivered, buffered or not.
    if (s_.lifecycle().receive_side() != proto::side_state::open && s_.is_open())
      co_return error(errc::shut_down, "framed recv");
    auto ev = conn_.next_event();
    if (auto* m = std::get_if<framing::message>(&ev))
      co_return std::optional(std::vector<std::byte>(m->payload.begin(), m->payload.end()));
    if (std::holds_alternative<framing::peer_close>(ev))
      co_return std::optional<std::vector<std::byte>>();
    if (auto* e = std::get_if<framing::protocol_error>(&ev))
      co_return error(
          errc::protocol_error,
          fmt::format("framed recv: {}: {}", framing::to_string(e->what), e->description));
    if (std::holds_alternative<framing::end_of_stream>(ev)) {
      if (conn_.peer_closed()) co_return std::optional<std::vector<std::byte>>();
      co_return error(errc::connection_aborted,
                      "framed recv: the peer ended the stream without a CLOSE frame");
    }
    auto n = co_await s_.recv(in_);
    if (!n) co_return std::move(n).error();
    if (*n == 0)
      conn_.receive_eof();
    else
      conn_.receive_data(std::span(in_).first(*n));
  }
}

task<result<void>> framed_stream::send_disconnect(std::span<const std::byte> data) {
  if (data.size() > conn_.frame_limits().max_disconnect_data)
    co_return error(errc::message_too_large,
                    fmt::format("framed send_disconnect: {} bytes of disconnect data exceed the "
                                "limit of {}",
                                data.size(), conn_.frame_limits().max_disconnect_data));
  if (!conn_.local_closed()) {
    // Ask the lifecycle first, so a closed or unconnected stream fails as TCP would.
    if (auto d = s_.lifecycle().begin_send(); d.action == proto::verdict::fail)
      co_return error(d.error, "framed send_disconnect");
    const framing::header head = conn_.close_header(data.size());
    const std::array<std::span<const std::byte>, 2> parts{std::span<const std::byte>(head), data};
    auto r = co_await s_.send_all(std::span(parts));
    if (!r) co_return std::move(r).error();
  }
  auto r = co_await s_.send_disconnect();
  if (!r) co_return std::move(r).error();
  co_return result<void>();
}

task<result<std::size_t>> framed_stream::recv_disconnect(std::span<std::byte> buffer) {
  co_return co_await detail::layered_recv_disconnect(s_, buffer, conn_.disconnect_data(),
                                                     disconnect_delivered_);
}

task<framed_stream::close_report> framed_stream::graceful_close(std::span<const std::byte> data,
                                                                tcp::graceful_close_options o) {
  co_return co_await detail::close_handshake<close_report>(
      s_, o, [&] { return send_disconnect(data); }, [&] { return conn_.peer_closed(); },
      [&] { return recv(); }, [](const std::vector<std::byte>& m) { return m.size(); });
}

} // namespace sluice
