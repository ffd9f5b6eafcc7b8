// What the transports layered on a tcp::stream with a close message of their own
// (framed_stream's CLOSE frame, WebSocket's close frame) share: recv_disconnect() that
// yields the peer's close data, and the close handshake of graceful_close().
#pragma once

#include <sluice/net/tcp.hpp>
#include <sluice/task.hpp>
#include <sluice/timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>

namespace sluice::detail {

// TCP's half-close under the recv_disconnect contract, with the lifecycle deciding
// buffer_too_small for the `pending` bytes of close data held above it; then those
// bytes are copied into `buffer`, once (`delivered`: later calls yield 0 bytes).
inline task<result<std::size_t>> layered_recv_disconnect(tcp::stream& s,
                                                         std::span<std::byte> buffer,
                                                         std::span<const std::byte> pending,
                                                         bool& delivered) {
  if (delivered) pending = {};
  auto r = co_await s.recv_disconnect_layered(buffer, pending.size());
  if (!r) co_return std::move(r).error();
  if (pending.empty()) co_return std::size_t{0};
  std::memcpy(buffer.data(), pending.data(), pending.size());
  delivered = true;
  co_return pending.size();
}

// graceful_close() of such a transport: `send_close()` (our close message and a FIN),
// then `receive()` until `peer_closed()`, dropping the messages (`size_of` each), all
// within `o.deadline` and `o.max_discard`; past either, or on an error, the connection
// is reset. Report has the fields of framed_stream::close_report.
template <class Report, class SendClose, class PeerClosed, class Receive, class SizeOf>
task<Report> close_handshake(tcp::stream& s, tcp::graceful_close_options o, SendClose send_close,
                             PeerClosed peer_closed, Receive receive, SizeOf size_of) {
  using clock = std::chrono::steady_clock;
  Report rep;
  const auto deadline = clock::now() + o.deadline;
  auto left = [&] { return std::max(clock::duration::zero(), deadline - clock::now()); };
  auto sent = co_await with_timeout(send_close(), left());
  if (!sent) {
    rep.timed_out = sent.error() == errc::timed_out;
    rep.aborted = true;
    s.abort();
    co_return rep;
  }
  std::size_t discarded_bytes = 0;
  while (!peer_closed()) {
    auto m = co_await with_timeout(receive(), left());
    if (!m || discarded_bytes > o.max_discard) {
      rep.timed_out = !m && m.error() == errc::timed_out;
      rep.aborted = true;
      s.abort();
      co_return rep;
    }
    if (!*m) break; // the peer's close message
    ++rep.messages_discarded;
    discarded_bytes += size_of(**m);
  }
  rep.peer_close_seen = true;
  co_return rep;
}

} // namespace sluice::detail
