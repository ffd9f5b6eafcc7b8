// framed_stream: the framing protocol (docs/framing.md) over a tcp::stream, on any
// backend. Messages keep their boundaries, and the CLOSE frame carries disconnect data
// that recv_disconnect() yields — the transport on which that call returns real bytes.
//
//   framed_stream f(std::move(tcp_stream));
//   co_await f.send(bytes("hello"));
//   co_await f.send_disconnect(bytes("bye"));        // CLOSE frame, then FIN
//   ...
//   auto m = co_await f.recv();                       // optional<vector<byte>>;
//                                                     // nullopt once the peer's CLOSE came
//   auto n = co_await f.recv_disconnect(buf);         // the peer's disconnect data
#pragma once

#include <sluice/export.hpp>

#include <optional>
#include <sluice/net/tcp.hpp>
#include <sluice/proto/framing.hpp>
#include <vector>

namespace sluice {

/// Length-prefixed messages over a tcp::stream, whose CLOSE frame carries disconnect
/// data: the transport on which recv_disconnect() yields the peer's bytes
/// (docs/framing.md).
class SLUICE_API framed_stream {
public:
  /// Frames messages on `s`, within the limits `l`.
  explicit framed_stream(tcp::stream s, proto::framing::limits l = {});

  /// Sends one message. message_too_large above the limit (nothing is sent then).
  task<result<void>> send(std::span<const std::byte> message);

  /// The next message, or std::nullopt once the peer's CLOSE has arrived (end of
  /// stream). A peer that breaks the framing: errc::protocol_error, naming the
  /// violation; a transport that ends without a CLOSE: errc::connection_aborted.
  task<result<std::optional<std::vector<std::byte>>>> recv();

  /// Sends the CLOSE frame carrying `data`, then half-closes the send side.
  task<result<void>> send_disconnect(std::span<const std::byte> data = {});

  /// Half-closes the receive side and copies the peer's disconnect data (empty if its
  /// CLOSE has not arrived) into `buffer`; returns its size. A buffer too small fails
  /// with errc::buffer_too_small and keeps the data for a retry. Otherwise the
  /// recv_disconnect contract of tcp::stream, which this calls.
  task<result<std::size_t>> recv_disconnect(std::span<std::byte> buffer);

  /// Closes gracefully on the framing transport: sends the CLOSE frame with `data` and
  /// a FIN, then reads (and discards) until the peer's CLOSE — bounded by the options
  /// as tcp::stream::graceful_close is. The stream stays open afterwards so that
  /// recv_disconnect() can yield the peer's disconnect data; close() ends it.
  struct close_report {
    bool peer_close_seen = false;       ///< the peer's CLOSE arrived
    std::size_t messages_discarded = 0; ///< messages read and dropped meanwhile
    bool timed_out = false;             ///< the deadline was hit
    bool aborted = false;               ///< the connection was reset
  };
  /// Closes gracefully with `data` as the disconnect data (see close_report).
  task<close_report> graceful_close(std::span<const std::byte> data,
                                    tcp::graceful_close_options options = {});

  /// This transport carries disconnect data (the analog of XP1_DISCONNECT_DATA).
  static constexpr bool carries_disconnect_data() noexcept { return true; }

  /// True once the peer's CLOSE frame has arrived.
  bool peer_closed() const noexcept { return conn_.peer_closed(); }
  /// The TCP stream underneath.
  tcp::stream& next_layer() noexcept { return s_; }
  /// Closes the TCP stream (no CLOSE frame: use graceful_close() for that).
  void close() noexcept { s_.close(); }

private:
  tcp::stream s_;
  proto::framing::connection conn_;
  std::vector<std::byte> in_;
  bool disconnect_delivered_ = false;
};

} // namespace sluice

// fmt: "peer CLOSE seen, 0 messages discarded" / "aborted at the deadline, ...".
/// \cond SPECIALIZATIONS
template <>
struct fmt::formatter<sluice::framed_stream::close_report> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::framed_stream::close_report& r, Ctx& ctx) const {
    const char* how = r.aborted           ? (r.timed_out ? "aborted at the deadline" : "aborted")
                      : r.peer_close_seen ? "peer CLOSE seen"
                                          : "closed";
    return fmt::formatter<std::string_view>::format(
        fmt::format("{}, {} messages discarded", how, r.messages_discarded), ctx);
  }
};
/// \endcond
