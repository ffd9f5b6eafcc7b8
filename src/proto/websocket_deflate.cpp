// permessage-deflate (RFC 7692) for proto::websocket::connection, on zlib: raw deflate
// streams, a message ends with a sync flush whose 00 00 FF FF tail is cut on sending
// and put back on receiving. docs/websocket.md has the design; this file is the only
// one in sluice::proto that includes zlib.
#include <sluice/proto/websocket.hpp>

#include <fmt/format.h>
#include <zlib.h>

namespace sluice::proto::websocket {

struct connection::zlib_state {
  z_stream out{}; ///< our compressor
  z_stream in{};  ///< the peer's messages
  bool out_ready = false;
  bool in_ready = false;
  std::vector<std::byte> deflated; ///< the last fragment compressed

  zlib_state() = default;
  zlib_state(const zlib_state&) = delete;
  zlib_state& operator=(const zlib_state&) = delete;
  ~zlib_state() {
    if (out_ready) deflateEnd(&out);
    if (in_ready) inflateEnd(&in);
  }
};

void connection::zlib_free::operator()(zlib_state* z) const noexcept { delete z; }
connection::~connection() = default;
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&&) noexcept = default;

namespace {
constexpr std::byte tail[4] = {std::byte{0x00}, std::byte{0x00}, std::byte{0xFF}, std::byte{0xFF}};

Bytef* zin(const std::byte* p) noexcept {
  return reinterpret_cast<Bytef*>(const_cast<std::byte*>(p)); // zlib's next_in is not const
}
} // namespace

event connection::finish_compressed(opcode kind) {
  if (!zlib_) zlib_.reset(new zlib_state);
  auto& z = *zlib_;
  if (!z.in_ready) {
    // Our inflater takes any window up to 15 bits: the peer's may only be smaller.
    if (inflateInit2(&z.in, -15) != Z_OK)
      return fail(close_code::internal_error, "permessage-deflate: zlib could not start");
    z.in_ready = true;
  }
  inflated_.clear();
  // The compressed message, then the tail its sender cut (RFC 7692 7.2.2).
  const std::span<const std::byte> parts[2] = {std::span<const std::byte>(message_),
                                               std::span<const std::byte>(tail)};
  for (const auto& part : parts) {
    z.in.next_in = zin(part.data());
    z.in.avail_in = static_cast<uInt>(part.size());
    while (z.in.avail_in > 0) {
      const std::size_t before = inflated_.size();
      // Grow in steps, never past the limit (+1 to see that it was passed): a small
      // message that inflates to gigabytes stops at max_message.
      const std::size_t room = std::min<std::size_t>(std::max<std::size_t>(before, 16 * 1024),
                                                     limits_.max_message + 1 - before);
      inflated_.resize(before + room);
      z.in.next_out = reinterpret_cast<Bytef*>(inflated_.data() + before);
      z.in.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&z.in, Z_SYNC_FLUSH);
      inflated_.resize(before + room - z.in.avail_out);
      if (rc == Z_STREAM_END)
        return fail(close_code::invalid_payload,
                    "permessage-deflate: a compressed message with a final deflate block");
      if (rc != Z_OK && rc != Z_BUF_ERROR)
        return fail(close_code::invalid_payload,
                    fmt::format("permessage-deflate: the message does not inflate ({})",
                                z.in.msg ? z.in.msg : "zlib error"));
      if (inflated_.size() > limits_.max_message)
        return fail(close_code::message_too_big,
                    fmt::format("a compressed message of {} bytes inflating past {} bytes (the "
                                "limit)",
                                message_.size(), limits_.max_message));
      if (rc == Z_BUF_ERROR && z.in.avail_out != 0) break; // no progress possible
    }
  }
  const bool peer_resets = role_ == role::server ? deflate_->params.client_no_context_takeover
                                                 : deflate_->params.server_no_context_takeover;
  if (peer_resets) inflateReset(&z.in);
  if (kind == opcode::text) {
    utf8_validator v;
    if (!v.feed(inflated_) || !v.complete())
      return fail(close_code::invalid_payload, "invalid UTF-8 in a compressed text message");
  }
  return message{kind, std::span<const std::byte>(inflated_)};
}

std::span<const std::byte> connection::compress(std::span<const std::byte> payload, bool fin) {
  if (!zlib_) zlib_.reset(new zlib_state);
  auto& z = *zlib_;
  const auto& p = deflate_->params;
  const bool server = role_ == role::server;
  if (!z.out_ready) {
    const int bits = server ? p.server_max_window_bits : p.client_max_window_bits;
    if (deflateInit2(&z.out, deflate_->level, Z_DEFLATED, -bits, deflate_->mem_level,
                     Z_DEFAULT_STRATEGY) != Z_OK)
      throw local_error("websocket permessage-deflate: zlib could not start its compressor");
    z.out_ready = true;
  }
  z.deflated.clear();
  z.out.next_in = zin(payload.data());
  z.out.avail_in = static_cast<uInt>(payload.size());
  // A sync flush ends the output on a byte boundary with an empty stored block
  // (00 00 FF FF); deflate is called until it has room left over, so all is out.
  for (;;) {
    const std::size_t before = z.deflated.size();
    const std::size_t room = deflateBound(&z.out, static_cast<uLong>(z.out.avail_in)) + 16;
    z.deflated.resize(before + room);
    z.out.next_out = reinterpret_cast<Bytef*>(z.deflated.data() + before);
    z.out.avail_out = static_cast<uInt>(room);
    const int rc = ::deflate(&z.out, Z_SYNC_FLUSH);
    z.deflated.resize(before + room - z.out.avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      throw local_error("websocket permessage-deflate: zlib failed to compress");
    if (z.out.avail_out != 0 && z.out.avail_in == 0) break;
  }
  std::span<const std::byte> out(z.deflated);
  if (fin) {
    if (out.size() >= 4 && std::equal(out.end() - 4, out.end(), std::begin(tail)))
      out = out.first(out.size() - 4);
    const bool resets = server ? p.server_no_context_takeover : p.client_no_context_takeover;
    if (resets) deflateReset(&z.out);
  }
  if (fin && out.empty()) { // an empty message: one empty stored block's first byte
    z.deflated.assign(1, std::byte{0});
    out = std::span<const std::byte>(z.deflated);
  }
  return out;
}

} // namespace sluice::proto::websocket
