// Bytes a destroyed receive had taken (kept by their socket), handed out later as a
// lent_buffer of their own: the buffer is on the heap and goes when it is given back.
#pragma once

#include <sluice/lent_buffer.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace sluice::detail {

class heap_lend final : public buffer_pool {
public:
  // A lent_buffer over `bytes` (empty bytes: an empty lent_buffer that still owns them).
  static lent_buffer make(std::vector<std::byte> bytes) {
    auto* h = new heap_lend(std::move(bytes));
    return lent_buffer(*h, 0, h->bytes_.data(), h->bytes_.size());
  }

private:
  void return_buffer(std::uint32_t) noexcept override { delete this; }
  explicit heap_lend(std::vector<std::byte> b) : bytes_(std::move(b)) {}
  std::vector<std::byte> bytes_;
};

} // namespace sluice::detail
