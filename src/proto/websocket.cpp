// WebSocket frames (RFC 6455), sans-io. docs/websocket.md explains the choices: the
// header is checked as soon as it is whole (an oversized or unmasked frame fails before
// its payload arrives), the payload is unmasked and text validated as it arrives (bad
// UTF-8 fails at the first wrong byte, even across fragments), and a message is
// reported once whole, its fragments joined.
#include <sluice/proto/websocket.hpp>

#include <algorithm>
#include <fmt/format.h>

namespace sluice::proto::websocket {

bool valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// ------------------------------------------------------------------ UTF-8

namespace {
constexpr std::uint32_t utf8_failed = 0xFF;
}

bool utf8_validator::feed(std::span<const std::byte> bytes) noexcept {
  for (std::byte x : bytes) {
    const auto b = static_cast<std::uint8_t>(x);
    if (state_ == utf8_failed) return false;
    if (state_ == 0) {
      if (b < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        state_ = 1;
      } else if (b == 0xE0) { // no overlong three-byte forms
        state_ = 2;
        lo_ = 0xA0;
      } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
        state_ = 2;
      } else if (b == 0xED) { // no surrogates
        state_ = 2;
        hi_ = 0x9F;
      } else if (b == 0xF0) { // no overlong four-byte forms
        state_ = 3;
        lo_ = 0x90;
      } else if (b >= 0xF1 && b <= 0xF3) {
        state_ = 3;
      } else if (b == 0xF4) { // nothing past U+10FFFF
        state_ = 3;
        hi_ = 0x8F;
      } else {
        state_ = utf8_failed;
        return false;
      }
      continue;
    }
    if (b < lo_ || b > hi_) {
      state_ = utf8_failed;
      return false;
    }
    --state_;
    lo_ = 0x80;
    hi_ = 0xBF;
  }
  return state_ != utf8_failed;
}

// ------------------------------------------------------------- connection

namespace {

bool is_control(opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

const char* name(opcode op) noexcept {
  switch (op) {
  case opcode::continuation: return "continuation";
  case opcode::text: return "text";
  case opcode::binary: return "binary";
  case opcode::close: return "close";
  case opcode::ping: return "ping";
  case opcode::pong: return "pong";
  }
  return "?";
}

} // namespace

connection::connection(role r, limits l, mask_source masks, std::optional<compression> deflate)
    : role_(r), limits_(l), masks_(std::move(masks)), deflate_(std::move(deflate)) {
  // Masks must be unpredictable (RFC 6455 10.3): entropy is the caller's, not proto's.
  if (r == role::client && !masks_)
    throw local_error("websocket client connection: a mask_source is required");
  if (deflate_) {
    // Our compressor's window must be 9 to 15 bits (zlib's raw deflate has no 8); the
    // peer's may be 8, which our decompressor (15 bits) reads anyway.
    const auto& p = deflate_->params;
    const int ours = r == role::server ? p.server_max_window_bits : p.client_max_window_bits;
    const int theirs = r == role::server ? p.client_max_window_bits : p.server_max_window_bits;
    if (ours < 9 || ours > 15 || theirs < 8 || theirs > 15)
      throw local_error(fmt::format("websocket permessage-deflate: window bits {}/{} (server/"
                                    "client): ours must be 9 to 15, the peer's 8 to 15",
                                    p.server_max_window_bits, p.client_max_window_bits));
    if (deflate_->level < 1 || deflate_->level > 9 || deflate_->mem_level < 1 ||
        deflate_->mem_level > 9)
      throw local_error(fmt::format("websocket permessage-deflate: level {} and mem_level {} "
                                    "must be 1 to 9",
                                    deflate_->level, deflate_->mem_level));
  }
}

void connection::receive_data(std::span<const std::byte> bytes) {
  compact();
  in_.insert(in_.end(), bytes.begin(), bytes.end());
}

// Drops the bytes already turned into events (spans handed out become invalid here,
// as documented: "valid until the next receive_data()").
void connection::compact() {
  if (consumed_ == 0) return;
  in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(consumed_));
  consumed_ = 0;
}

std::vector<std::byte> connection::take_pending_output() {
  std::vector<std::byte> out;
  out.swap(pending_);
  return out;
}

protocol_error connection::fail(std::uint16_t code, std::string description) {
  failed_ = true;
  return {code, std::move(description)};
}

event connection::next_event() {
  // A fragment that does not end its message is no event: go on to the next frame.
  for (;;) {
    bool more = false;
    event e = step(more);
    if (!more) return e;
  }
}

event connection::step(bool& more) {
  if (failed_) return need_data{};
  const std::byte* at = in_.data() + consumed_;
  const std::size_t avail = in_.size() - consumed_;
  if (!have_header_) {
    if (avail < 2) return need_data{};
    const auto b0 = static_cast<std::uint8_t>(at[0]);
    const auto b1 = static_cast<std::uint8_t>(at[1]);
    std::size_t need = 2;
    const std::uint8_t len7 = b1 & 0x7F;
    if (len7 == 126) need += 2;
    if (len7 == 127) need += 8;
    masked_ = (b1 & 0x80) != 0;
    if (masked_) need += 4;
    if (avail < need) return need_data{};

    fin_ = (b0 & 0x80) != 0;
    op_ = static_cast<opcode>(b0 & 0x0F);
    std::uint64_t len = len7;
    std::size_t pos = 2;
    if (len7 == 126) {
      len = (std::uint64_t(at[2]) << 8) | std::uint64_t(at[3]);
      pos = 4;
      if (len < 126)
        return fail(
            close_code::protocol_error,
            fmt::format("a length of {} in the 16-bit form (it must use the shortest)", len));
    } else if (len7 == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | static_cast<std::uint64_t>(at[2 + i]);
      pos = 10;
      if ((len >> 63) != 0)
        return fail(close_code::protocol_error, "a 64-bit length with its top bit set");
      if (len <= 0xFFFF)
        return fail(
            close_code::protocol_error,
            fmt::format("a length of {} in the 64-bit form (it must use the shortest)", len));
    }
    if (masked_) std::copy_n(at + pos, 4, mask_.begin());

    const bool rsv1 = (b0 & 0x40) != 0;
    if ((b0 & 0x30) != 0 || (rsv1 && !deflate_))
      return fail(close_code::protocol_error,
                  fmt::format("RSV bits {:#x} set, and no extension was negotiated that uses them",
                              b0 & (deflate_ ? 0x30 : 0x70)));
    const auto code = static_cast<std::uint8_t>(op_);
    if ((code >= 0x3 && code <= 0x7) || code >= 0xB)
      return fail(close_code::protocol_error, fmt::format("unknown opcode {:#x}", code));
    if (peer_closed_)
      return fail(close_code::protocol_error,
                  fmt::format("a {} frame after the close frame", name(op_)));
    if (role_ == role::server && !masked_)
      return fail(close_code::protocol_error,
                  fmt::format("an unmasked {} frame from the client", name(op_)));
    if (role_ == role::client && masked_)
      return fail(close_code::protocol_error,
                  fmt::format("a masked {} frame from the server", name(op_)));
    if (rsv1 && op_ != opcode::text && op_ != opcode::binary)
      return fail(close_code::protocol_error,
                  fmt::format("RSV1 (compressed) on a {} frame: only a message's first frame "
                              "carries it",
                              name(op_)));
    if (is_control(op_)) {
      if (!fin_)
        return fail(close_code::protocol_error, fmt::format("a fragmented {} frame", name(op_)));
      if (len > 125)
        return fail(close_code::protocol_error,
                    fmt::format("a {} frame of {} bytes (the limit is 125)", name(op_), len));
    } else {
      if (op_ == opcode::continuation && message_kind_ == opcode::continuation)
        return fail(close_code::protocol_error, "a continuation frame with no message to continue");
      if (op_ != opcode::continuation && message_kind_ != opcode::continuation)
        return fail(close_code::protocol_error,
                    fmt::format("a {} frame inside a fragmented {} message", name(op_),
                                name(message_kind_)));
      if (len > limits_.max_frame)
        return fail(close_code::message_too_big,
                    fmt::format("a {} frame of {} bytes (the limit is {})", name(op_), len,
                                limits_.max_frame));
      const std::size_t so_far = op_ == opcode::continuation ? message_.size() : 0;
      if (so_far + len > limits_.max_message)
        return fail(close_code::message_too_big,
                    fmt::format("a message of at least {} bytes (the limit is {})", so_far + len,
                                limits_.max_message));
      if (op_ != opcode::continuation) { // a new message starts
        if (clear_message_) message_.clear();
        clear_message_ = false;
        message_kind_ = op_;
        compressed_ = rsv1;
        utf8_.reset();
      }
    }
    have_header_ = true;
    header_len_ = need;
    len_ = len;
    processed_ = 0;
  }

  // The payload so far: unmask it in place and validate text as it comes.
  const std::size_t have =
      static_cast<std::size_t>(std::min<std::uint64_t>(avail - header_len_, len_));
  std::byte* payload = in_.data() + consumed_ + header_len_;
  if (have > processed_) {
    if (masked_)
      for (std::size_t i = processed_; i < have; ++i)
        payload[i] ^= mask_[i % 4];
    if (!is_control(op_) && message_kind_ == opcode::text && !compressed_) {
      const utf8_validator before = utf8_;
      if (!utf8_.feed(std::span(payload + processed_, have - processed_))) {
        // Find the offending byte again, for the message.
        utf8_validator probe = before;
        std::size_t at_byte = processed_;
        while (probe.feed(std::span(payload + at_byte, 1)))
          ++at_byte;
        return fail(
            close_code::invalid_payload,
            fmt::format("invalid UTF-8 in a text message at byte {} of its frame", at_byte));
      }
    }
    processed_ = have;
  }
  if (processed_ < len_) return need_data{};

  // The frame is whole.
  const std::span<const std::byte> body(payload, static_cast<std::size_t>(len_));
  consumed_ += header_len_ + static_cast<std::size_t>(len_);
  have_header_ = false;

  switch (op_) {
  case opcode::ping:
    if (!local_closed_) frame(opcode::pong, true, body, pending_);
    return ping{body};
  case opcode::pong: return pong{body};
  case opcode::close: {
    peer_close pc{close_code::no_status, {}};
    if (body.size() == 1)
      return fail(close_code::protocol_error, "a close frame with a 1-byte payload");
    if (body.size() >= 2) {
      pc.code = static_cast<std::uint16_t>((std::uint16_t(body[0]) << 8) | std::uint16_t(body[1]));
      if (!valid_close_code(pc.code))
        return fail(close_code::protocol_error,
                    fmt::format("close code {} may not be sent", pc.code));
      utf8_validator reason;
      const auto r = body.subspan(2);
      if (!reason.feed(r) || !reason.complete())
        return fail(close_code::invalid_payload, "a close reason that is not UTF-8");
      pc.reason.assign(reinterpret_cast<const char*>(r.data()), r.size());
    }
    peer_closed_ = true;
    if (!local_closed_) { // answer with the same code (RFC 6455 5.5.1)
      std::vector<std::byte> echo;
      if (pc.code != close_code::no_status) {
        echo = {std::byte(pc.code >> 8), std::byte(pc.code & 0xFF)};
        echo.insert(echo.end(), body.begin() + 2, body.end());
      }
      frame(opcode::close, true, echo, pending_);
      local_closed_ = true;
    }
    return pc;
  }
  default: break;
  }

  // A data frame.
  const bool text = message_kind_ == opcode::text;
  if (compressed_) { // inflated once whole, then validated
    message_.insert(message_.end(), body.begin(), body.end());
    if (!fin_) {
      more = true;
      return need_data{};
    }
    const opcode kind = message_kind_;
    message_kind_ = opcode::continuation;
    clear_message_ = true;
    return finish_compressed(kind);
  }
  if (fin_ && text && !utf8_.complete())
    return fail(close_code::invalid_payload, "a text message that ends inside a UTF-8 sequence");
  if (fin_ && op_ != opcode::continuation) { // a whole message in one frame
    message_kind_ = opcode::continuation;
    return message{text ? opcode::text : opcode::binary, body};
  }
  message_.insert(message_.end(), body.begin(), body.end());
  if (!fin_) {
    more = true;
    return need_data{};
  }
  const opcode kind = message_kind_;
  message_kind_ = opcode::continuation;
  clear_message_ = true;
  return message{kind, std::span<const std::byte>(message_)};
}

// ---------------------------------------------------------------- sending

void connection::frame(opcode op, bool fin, std::span<const std::byte> payload,
                       std::vector<std::byte>& out, bool rsv1) {
  const bool mask = role_ == role::client;
  out.push_back(std::byte((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(op)));
  const std::uint8_t m = mask ? 0x80 : 0;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(std::byte(m | n));
  } else if (n <= 0xFFFF) {
    out.push_back(std::byte(m | 126));
    out.push_back(std::byte(n >> 8));
    out.push_back(std::byte(n & 0xFF));
  } else {
    out.push_back(std::byte(m | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(std::byte((n >> (8 * i)) & 0xFF));
  }
  if (!mask) {
    out.insert(out.end(), payload.begin(), payload.end());
    return;
  }
  const auto key = masks_();
  out.insert(out.end(), key.begin(), key.end());
  const std::size_t start = out.size();
  out.insert(out.end(), payload.begin(), payload.end());
  for (std::size_t i = 0; i < payload.size(); ++i)
    out[start + i] ^= key[i % 4];
}

void connection::send_message(opcode kind, std::span<const std::byte> payload,
                              std::vector<std::byte>& out) {
  if (sending_ != opcode::continuation)
    throw local_error("websocket send_message: a fragmented message is still being sent");
  send_fragment(kind, payload, true, out);
}

void connection::send_fragment(opcode kind, std::span<const std::byte> payload, bool fin,
                               std::vector<std::byte>& out) {
  if (local_closed_) throw local_error("websocket send: the close frame was already sent");
  if (kind != opcode::text && kind != opcode::binary)
    throw local_error(
        fmt::format("websocket send: a message is text or binary, not {}", name(kind)));
  if (sending_ != opcode::continuation && kind != sending_)
    throw local_error(fmt::format("websocket send: a {} fragment inside a {} message", name(kind),
                                  name(sending_)));
  const bool first = sending_ == opcode::continuation;
  if (kind == opcode::text) {
    if (first) out_utf8_.reset();
    if (!out_utf8_.feed(payload) || (fin && !out_utf8_.complete()))
      throw local_error("websocket send: text that is not UTF-8");
  }
  if (first) // a fragmented message is compressed whole or not at all
    sending_compressed_ = deflate_ && (!fin || payload.size() >= deflate_->threshold);
  if (sending_compressed_) {
    const auto packed = compress(payload, fin);
    frame(first ? kind : opcode::continuation, fin, packed, out, first);
  } else {
    frame(first ? kind : opcode::continuation, fin, payload, out);
  }
  sending_ = fin ? opcode::continuation : kind;
}

void connection::send_ping(std::span<const std::byte> payload, std::vector<std::byte>& out) {
  send_control(opcode::ping, "ping", payload, out);
}

void connection::send_pong(std::span<const std::byte> payload, std::vector<std::byte>& out) {
  send_control(opcode::pong, "pong", payload, out);
}

void connection::send_control(opcode op, const char* what, std::span<const std::byte> payload,
                              std::vector<std::byte>& out) {
  if (local_closed_)
    throw local_error(fmt::format("websocket {}: the close frame was already sent", what));
  if (payload.size() > 125)
    throw local_error(
        fmt::format("websocket {} of {} bytes (the limit is 125)", what, payload.size()));
  frame(op, true, payload, out);
}

void connection::send_close(std::uint16_t code, std::string_view reason,
                            std::vector<std::byte>& out) {
  if (local_closed_) throw local_error("websocket close: the close frame was already sent");
  std::vector<std::byte> body;
  if (code == close_code::no_status) {
    if (!reason.empty()) throw local_error("websocket close: a reason needs a close code");
  } else {
    if (!valid_close_code(code))
      throw local_error(fmt::format("websocket close: code {} may not be sent", code));
    if (reason.size() > 123)
      throw local_error(
          fmt::format("websocket close: a reason of {} bytes (the limit is 123)", reason.size()));
    utf8_validator v;
    const auto r = std::as_bytes(std::span(reason.data(), reason.size()));
    if (!v.feed(r) || !v.complete())
      throw local_error("websocket close: a reason that is not UTF-8");
    body = {std::byte(code >> 8), std::byte(code & 0xFF)};
    body.insert(body.end(), r.begin(), r.end());
  }
  frame(opcode::close, true, body, out);
  local_closed_ = true;
}

} // namespace sluice::proto::websocket
