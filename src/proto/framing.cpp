#include <sluice/proto/framing.hpp>

#include <algorithm>
#include <fmt/format.h>

namespace sluice::proto::framing {

const char* to_string(violation v) noexcept {
  switch (v) {
  case violation::unknown_frame_type: return "unknown_frame_type";
  case violation::message_too_large: return "message_too_large";
  case violation::disconnect_data_too_large: return "disconnect_data_too_large";
  case violation::frame_after_close: return "frame_after_close";
  case violation::truncated_frame: return "truncated_frame";
  }
  return "unknown violation";
}

connection::connection(limits l) : limits_(l) {
  limits_.max_message = std::min(limits_.max_message, hard_max_message);
  limits_.max_disconnect_data = std::min(limits_.max_disconnect_data, hard_max_message);
}

void connection::receive_data(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  // Drop what earlier events consumed before growing the buffer (their spans die here).
  if (consumed_ != 0) {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  in_.insert(in_.end(), bytes.begin(), bytes.end());
}

protocol_error connection::fail(violation v, std::string description) {
  failed_ = true;
  return protocol_error{v, std::move(description)};
}

event connection::next_event() {
  if (failed_) return protocol_error{violation::truncated_frame, "connection already failed"};
  const std::size_t avail = in_.size() - consumed_;
  if (peer_closed_) {
    if (avail != 0)
      return fail(violation::frame_after_close,
                  fmt::format("{} bytes received after the CLOSE frame", avail));
    if (eof_ && !eof_reported_) {
      eof_reported_ = true;
      return end_of_stream{};
    }
    return need_data{};
  }
  if (avail < header_size) {
    if (!eof_) return need_data{};
    if (avail != 0)
      return fail(
          violation::truncated_frame,
          fmt::format("end of stream inside a frame header ({} of {} bytes)", avail, header_size));
    eof_reported_ = true;
    return end_of_stream{};
  }
  const std::byte* h = in_.data() + consumed_;
  const auto type = static_cast<std::uint8_t>(h[0]);
  const std::uint64_t length = (std::uint64_t(h[1]) << 24) | (std::uint64_t(h[2]) << 16) |
                               (std::uint64_t(h[3]) << 8) | std::uint64_t(h[4]);
  if (type != std::uint8_t(frame_type::data) && type != std::uint8_t(frame_type::close))
    return fail(violation::unknown_frame_type, fmt::format("unknown frame type 0x{:02x}", type));
  if (type == std::uint8_t(frame_type::data) && length > limits_.max_message)
    return fail(
        violation::message_too_large,
        fmt::format("DATA frame of {} bytes exceeds the limit of {}", length, limits_.max_message));
  if (type == std::uint8_t(frame_type::close) && length > limits_.max_disconnect_data)
    return fail(violation::disconnect_data_too_large,
                fmt::format("CLOSE frame with {} bytes of disconnect data exceeds the limit of {}",
                            length, limits_.max_disconnect_data));
  if (avail - header_size < length) {
    if (!eof_) return need_data{};
    return fail(violation::truncated_frame,
                fmt::format("end of stream inside a frame ({} of {} payload bytes)",
                            avail - header_size, length));
  }
  const std::span<const std::byte> payload(h + header_size, length);
  consumed_ += header_size + length;
  if (type == std::uint8_t(frame_type::close)) {
    peer_closed_ = true;
    close_data_.assign(payload.begin(), payload.end());
    return peer_close{close_data_};
  }
  return message{payload};
}

namespace {
header encode(frame_type t, std::size_t length) {
  return {std::byte(t), std::byte((length >> 24) & 0xff), std::byte((length >> 16) & 0xff),
          std::byte((length >> 8) & 0xff), std::byte(length & 0xff)};
}
} // namespace

header connection::message_header(std::size_t payload_size) {
  if (local_closed_) throw local_error("framing: send_message after send_close");
  if (payload_size > limits_.max_message)
    throw local_error(fmt::format("framing: message of {} bytes exceeds the limit of {}",
                                  payload_size, limits_.max_message));
  return encode(frame_type::data, payload_size);
}

header connection::close_header(std::size_t data_size) {
  if (local_closed_) throw local_error("framing: send_close called twice");
  if (data_size > limits_.max_disconnect_data)
    throw local_error(fmt::format("framing: disconnect data of {} bytes exceeds the limit of {}",
                                  data_size, limits_.max_disconnect_data));
  local_closed_ = true;
  return encode(frame_type::close, data_size);
}

void connection::send_message(std::span<const std::byte> payload, std::vector<std::byte>& out) {
  const header h = message_header(payload.size());
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), payload.begin(), payload.end());
}

void connection::send_close(std::span<const std::byte> data, std::vector<std::byte>& out) {
  const header h = close_header(data.size());
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
}

} // namespace sluice::proto::framing
