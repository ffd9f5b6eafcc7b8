// The buffers receives borrow (recv_some, lent_buffer): one pool per io_context.
//
// Buffers are allocated in chunks as the pool grows on demand, from
// options::recv_buffers up to options::max_recv_buffers, and never move, so a buffer id
// names one address for the pool's life. Asio and IOCP (and io_uring without a buffer
// ring) take buffers from a free list; io_uring mirrors them into a provided-buffer ring
// that the kernel picks from (uring_backend.cpp overrides return_buffer and grow, and
// lets buffer_pool::give_back put a buffer back into the ring inline).
//
// Giving a buffer back tells the io_context, which lets a receiver that was starved of
// buffers go on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sluice/io_context.hpp>
#include <sluice/lent_buffer.hpp>
#include <vector>

namespace sluice::detail {

class recv_pool : public buffer_pool {
public:
  explicit recv_pool(io_context& io)
      : io_(io), size_(io.settings().recv_buffer_size), max_(io.settings().max_recv_buffers) {}
  recv_pool(const recv_pool&) = delete;
  recv_pool& operator=(const recv_pool&) = delete;
  virtual ~recv_pool() = default;

  // Creates the first buffers (the pool's initial size).
  void start() { add_to_free_list(allocate(io_.settings().recv_buffers)); }

  std::byte* address(std::uint32_t id) const noexcept { return addr_[id]; }
  std::size_t buffer_size() const noexcept { return size_; }
  std::uint32_t count() const noexcept { return static_cast<std::uint32_t>(addr_.size()); }
  std::uint32_t in_use() const noexcept { return in_use_; }
  // Whether a receive could get a buffer now (growing the pool if need be), and how
  // many are free without growing.
  bool has_free() const noexcept { return in_use_ < count() || count() < max_; }
  std::uint32_t free_count() const noexcept { return count() - in_use_; }

  // Free-list mode: a free buffer, growing the pool (doubling, up to its cap) when none
  // is left. False when the cap is reached and every buffer is lent.
  bool take(std::uint32_t& id) {
    if (free_.empty() && grow() == 0) return false;
    id = free_.back();
    free_.pop_back();
    ++in_use_;
    return true;
  }

protected:
  // Free-list mode (and whatever the inline path of give_back() leaves to it).
  void return_buffer(std::uint32_t id) noexcept override {
    --in_use_;
    free_.push_back(id);
    io_.buffers_came_back();
  }

public:
  // Ring mode: a buffer the kernel picked was lent out.
  void lent_by_kernel() noexcept { ++in_use_; }

  // Adds buffers (doubling, up to the cap); how many were added.
  virtual std::uint32_t grow() {
    const std::uint32_t n = std::min(count(), max_ - count());
    return add_to_free_list(allocate(n));
  }

protected:
  struct added {
    std::uint32_t first, n;
  };
  // New buffers, ids first..first+n-1, in one chunk.
  added allocate(std::uint32_t n) {
    n = std::min(n, max_ - count());
    const auto first = count();
    if (n == 0) return {first, 0};
    // Not zeroed: pages become resident only when a receive first fills them.
    chunks_.push_back(std::unique_ptr<std::byte[]>(new std::byte[n * size_]));

    std::byte* base = chunks_.back().get();
    addr_.reserve(first + n);
    free_.reserve(first + n);
    for (std::uint32_t i = 0; i < n; ++i)
      addr_.push_back(base + static_cast<std::size_t>(i) * size_);
    return {first, n};
  }
  std::uint32_t add_to_free_list(added a) {
    for (std::uint32_t i = 0; i < a.n; ++i)
      free_.push_back(a.first + i);
    return a.n;
  }

  io_context& io_;
  std::size_t size_;
  std::uint32_t max_;
  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  std::vector<std::byte*> addr_;    // by id
  std::vector<std::uint32_t> free_; // free-list mode
};

} // namespace sluice::detail
