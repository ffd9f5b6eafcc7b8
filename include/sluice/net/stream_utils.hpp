// Stream utilities: bounded buffered reading, and copying between streams with
// half-close passed through (a proxy's two loops).
//
//   buffered_reader in(conn);
//   auto line = co_await in.read_line(8192);     // result<std::string_view>, no "\r\n"
//   auto head = co_await in.read_exact(4);       // result<std::span<const std::byte>>
//
//   auto n = co_await copy(client, upstream);    // result<std::size_t>; FIN passed on
//   auto both = co_await copy_bidirectional(client, upstream); // both directions
//
// They work on any stream whose recv(std::span<std::byte>) yields result<std::size_t>
// (0 at the end) and whose send_all / shutdown_send() yield results: tcp::stream on
// every backend. A stream with recv_some() (lent buffers) is read through it, so an
// idle copy holds no buffer of its own.
//
// Limits are part of every read: a delimiter that does not come within `max` bytes is
// errc::message_too_large naming the delimiter and the limit, never unbounded growth;
// what was received stays buffered (buffered()), so nothing is lost. The stream ending
// first is errc::end_of_stream, saying how much had arrived.
//
// When to forward an end of stream and when to stop receiving: docs/streams.md.
#pragma once

#include <algorithm>
#include <cstddef>
#include <fmt/format.h>
#include <sluice/error.hpp>
#include <sluice/task.hpp>
#include <sluice/when_all.hpp>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

/// The streams the utilities read: recv(span) yields result<size_t>, 0 at the end.
template <class S>
concept readable_stream = requires(S& s, std::span<std::byte> b) {
  s.recv(b);
};
/// The streams copy() writes: send_all(span) and shutdown_send().
template <class S>
concept writable_stream = requires(S& s, std::span<const std::byte> b) {
  s.send_all(b);
  s.shutdown_send();
};

/// Reads from a stream through a buffer of its own, for protocols of lines, delimiters
/// and fixed-size fields. Every read is bounded (see the top of this header). A view
/// it returns stays valid until the next call on the reader. The reader refers to the
/// stream, which must outlive it; reading the stream directly afterwards would skip
/// what the reader holds (buffered()).
template <readable_stream Stream> class buffered_reader {
public:
  /// Reads from `s`, `chunk` bytes at most per receive.
  explicit buffered_reader(Stream& s, std::size_t chunk = 4096)
      : s_(&s), chunk_(chunk ? chunk : 1) {}

  /// Bytes up to and including the first `delim`, at most `max` of them (the delimiter
  /// counts). message_too_large if `max` bytes arrived without it; end_of_stream if the
  /// stream ended first; the stream's own error otherwise. After an error the bytes
  /// stay in buffered().
  task<result<std::string_view>> read_until(std::string_view delim, std::size_t max) {
    drop_returned();
    if (delim.empty()) co_return error(errc::protocol_error, "read_until: an empty delimiter");
    std::size_t searched = 0; // bytes already searched, past which the delimiter may start
    for (;;) {
      const std::string_view have(buf_.data() + begin_, end_ - begin_);
      const auto at = have.find(delim, searched);
      if (at != std::string_view::npos) {
        const std::size_t n = at + delim.size();
        if (n > max) co_return too_large("read_until", delim, max);
        returned_ = n;
        co_return have.substr(0, n);
      }
      if (have.size() >= max) co_return too_large("read_until", delim, max);
      searched = have.size() >= delim.size() ? have.size() - delim.size() + 1 : 0;
      auto got = co_await fill(max - have.size());
      if (!got) co_return std::move(got).error();
      if (*got == 0) co_return ended("read_until", delim);
    }
  }

  /// A line, without its "\n" or "\r\n", at most `max` bytes with the terminator.
  /// Errors as read_until's; a clean end of the stream between lines is end_of_stream
  /// with nothing buffered.
  task<result<std::string_view>> read_line(std::size_t max = 8192) {
    auto r = co_await read_until("\n", max);
    if (!r) co_return std::move(r).error();
    std::string_view line = r->substr(0, r->size() - 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    co_return line;
  }

  /// Exactly `n` bytes (the buffer grows to `n`), or end_of_stream saying how many came.
  task<result<std::span<const std::byte>>> read_exact(std::size_t n) {
    drop_returned();
    while (end_ - begin_ < n) {
      auto got = co_await fill(n - (end_ - begin_));
      if (!got) co_return std::move(got).error();
      if (*got == 0)
        co_return error(
            errc::end_of_stream,
            fmt::format("read_exact: the stream ended after {} of {} bytes", end_ - begin_, n));
    }
    returned_ = n;
    co_return std::as_bytes(std::span(buf_.data() + begin_, n));
  }

  /// Fills all of `out`: out.size(), or end_of_stream (what did arrive stays buffered).
  task<result<std::size_t>> read_exact(std::span<std::byte> out) {
    auto r = co_await read_exact(out.size());
    if (!r) co_return std::move(r).error();
    std::copy(r->begin(), r->end(), out.begin());
    co_return out.size();
  }

  /// Like the stream's recv: buffered bytes first, else one receive; 0 at the end.
  task<result<std::size_t>> recv(std::span<std::byte> out) {
    drop_returned();
    if (end_ == begin_) {
      if (out.size() >= chunk_) co_return co_await s_->recv(out); // no copy for big reads
      auto got = co_await fill(out.size());
      if (!got || *got == 0) co_return got;
    }
    const std::size_t n = std::min(out.size(), end_ - begin_);
    std::copy_n(reinterpret_cast<const std::byte*>(buf_.data() + begin_), n, out.begin());
    begin_ += n;
    co_return n;
  }

  /// What has been received and not handed out yet.
  std::span<const std::byte> buffered() const noexcept {
    const std::size_t from = begin_ + returned_;
    return std::as_bytes(std::span(buf_.data() + from, end_ - from));
  }
  /// Drops the first `n` bytes of buffered() (at most all of them).
  void consume(std::size_t n) noexcept {
    drop_returned();
    begin_ += std::min(n, end_ - begin_);
  }
  /// The stream it reads.
  Stream& stream() const noexcept { return *s_; }

private:
  void drop_returned() noexcept {
    begin_ += std::exchange(returned_, 0);
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // One receive of up to max(`want`, chunk) bytes appended to the buffer: the count,
  // 0 at the end of the stream.
  task<result<std::size_t>> fill(std::size_t want) {
    const std::size_t room = std::max(want, chunk_);
    if (begin_ > 0 && buf_.size() - end_ < room) { // slide what is left to the front
      std::copy(buf_.begin() + static_cast<std::ptrdiff_t>(begin_),
                buf_.begin() + static_cast<std::ptrdiff_t>(end_), buf_.begin());
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < room) buf_.resize(end_ + room);
    auto got = co_await s_->recv(std::as_writable_bytes(std::span(buf_.data() + end_, room)));
    if (got) end_ += *got;
    co_return got;
  }
  sluice::error too_large(const char* op, std::string_view delim, std::size_t max) const {
    return error(errc::message_too_large,
                 fmt::format("{}: no {} within {} bytes", op, quoted(delim), max));
  }
  sluice::error ended(const char* op, std::string_view delim) const {
    if (end_ == begin_) return error(errc::end_of_stream, fmt::format("{}: the stream ended", op));
    return error(errc::end_of_stream, fmt::format("{}: the stream ended after {} bytes without {}",
                                                  op, end_ - begin_, quoted(delim)));
  }
  static std::string quoted(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '\n')
        out += "\\n";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\t')
        out += "\\t";
      else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
      else
        out += c;
    }
    return out + "\"";
  }

  Stream* s_;
  std::size_t chunk_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;    // first byte not handed out
  std::size_t end_ = 0;      // end of what was received
  std::size_t returned_ = 0; // handed out by the last call, dropped at the next
};

/// Bytes copied by copy_bidirectional(), one count per direction.
struct copy_counts {
  std::size_t a_to_b = 0; ///< bytes read from the first stream and sent to the second
  std::size_t b_to_a = 0; ///< bytes read from the second stream and sent to the first
};

namespace detail {
template <class E> sluice::error copy_error(E&& e, std::size_t copied, const char* side) {
  return sluice::error(e.code(),
                       fmt::format("copy ({} after {} bytes): {}", side, copied,
                                   e.context().empty() ? e.code().message() : e.context()));
}
} // namespace detail

/// Copies `from` into `to` until `from` ends, then half-closes `to` (shutdown_send): an
/// end of stream on one side becomes an end of stream on the other. Yields the bytes
/// copied, or the first error of either side (its context says which side and after
/// how many bytes). Stopping the task stops the copy (operation_aborted).
template <readable_stream From, writable_stream To>
task<result<std::size_t>> copy(From& from, To& to, std::size_t chunk = 16 * 1024) {
  std::size_t total = 0;
  if constexpr (requires { from.recv_some(); }) { // lent buffers: nothing held while idle
    (void)chunk;
    for (;;) {
      auto got = co_await from.recv_some();
      if (!got) co_return detail::copy_error(std::move(got).error(), total, "reading");
      if (got->empty()) break;
      auto sent = co_await to.send_all(got->data());
      if (!sent) co_return detail::copy_error(std::move(sent).error(), total, "writing");
      total += *sent;
    }
  } else {
    std::vector<std::byte> buf(chunk ? chunk : 1);
    for (;;) {
      auto got = co_await from.recv(std::span(buf));
      if (!got) co_return detail::copy_error(std::move(got).error(), total, "reading");
      if (*got == 0) break;
      auto sent = co_await to.send_all(std::span<const std::byte>(buf.data(), *got));
      if (!sent) co_return detail::copy_error(std::move(sent).error(), total, "writing");
      total += *sent;
    }
  }
  auto fin = co_await to.shutdown_send();
  if (!fin)
    co_return detail::copy_error(std::move(fin).error(), total, "passing the end of stream on");
  co_return total;
}

/// copy(a, b) and copy(b, a) at once: each end of stream is passed on to the other
/// side and the other direction goes on until it ends too. Yields both counts once
/// both directions ended, or the first error; the other direction is then cancelled
/// (both have stopped when this returns). Closing the streams is left to the caller.
template <class A, class B>
requires readable_stream<A> && writable_stream<A> && readable_stream<B> && writable_stream<B>
    task<result<copy_counts>> copy_bidirectional(A& a, B& b, std::size_t chunk = 16 * 1024) {
  auto [ab, ba] = co_await when_all(copy(a, b, chunk), copy(b, a, chunk));
  // The first failure cancelled the other direction, which then reports
  // operation_aborted: report the cause, not the consequence.
  if (!ab && !(ab.error() == errc::operation_aborted && !ba)) co_return std::move(ab).error();
  if (!ba) co_return std::move(ba).error();
  if (!ab) co_return std::move(ab).error();
  co_return copy_counts{*ab, *ba};
}

} // namespace sluice
