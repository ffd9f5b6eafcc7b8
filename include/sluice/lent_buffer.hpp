// lent_buffer: received bytes in a buffer the backend lent from its io_context's pool.
//
//   auto b = co_await s.recv_some();      // result<lent_buffer>
//   if (!b) ...                           // an error
//   else if (b->empty()) ...              // end of stream
//   else parse(b->data());                // then let it go: the buffer goes back
//
// Move-only; destroying it (or release()) gives the buffer back to the pool — on
// io_uring straight into the kernel's provided-buffer ring. Give buffers back soon: the
// pool is shared by every connection of the context (keep the bytes, not the buffer).
// A lent_buffer must be destroyed on its io_context's thread, before the context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace sluice {

namespace detail {
/// Where a lent buffer goes back to (a backend's receive buffer pool). Loop thread.
class buffer_pool {
public:
  virtual void give_back(std::uint32_t id) noexcept = 0;

protected:
  ~buffer_pool() = default;
};
} // namespace detail

/// Received bytes in a buffer lent by the io_context's pool; destroying it gives the
/// buffer back (see the top of this header).
class lent_buffer {
public:
  /// Empty: no bytes, no buffer.
  lent_buffer() = default;
  /// `size` bytes at `data` in buffer `id` of `pool` (made by the runtime).
  lent_buffer(detail::buffer_pool& pool, std::uint32_t id, const std::byte* data,
              std::size_t size) noexcept
      : pool_(&pool), id_(id), data_(data), size_(size) {}
  /// Takes over `o`'s buffer; `o` is left empty.
  lent_buffer(lent_buffer&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), id_(o.id_), data_(o.data_),
        size_(std::exchange(o.size_, 0)) {}
  /// Gives its own buffer back, then takes over `o`'s.
  lent_buffer& operator=(lent_buffer&& o) noexcept {
    if (this != &o) {
      release();
      pool_ = std::exchange(o.pool_, nullptr);
      id_ = o.id_;
      data_ = o.data_;
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  lent_buffer(const lent_buffer&) = delete;
  lent_buffer& operator=(const lent_buffer&) = delete;
  ~lent_buffer() { release(); }

  /// The bytes not consumed yet.
  std::span<const std::byte> data() const noexcept { return {data_, size_}; }
  /// How many bytes data() holds.
  std::size_t size() const noexcept { return size_; }
  /// True if no bytes are left (or none were lent: the end of the stream).
  bool empty() const noexcept { return size_ == 0; }

  /// Drops the first `n` bytes (consumed); the buffer stays lent until destroyed.
  void consume(std::size_t n) noexcept {
    n = n < size_ ? n : size_;
    data_ += n;
    size_ -= n;
  }

  /// Gives the buffer back now.
  void release() noexcept {
    if (pool_ != nullptr) std::exchange(pool_, nullptr)->give_back(id_);
    size_ = 0;
  }

private:
  detail::buffer_pool* pool_ = nullptr;
  std::uint32_t id_ = 0;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

} // namespace sluice
