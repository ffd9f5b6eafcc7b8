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

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace sluice {

namespace detail {
/// One entry of a ring the kernel takes receive buffers from: the layout of io_uring's
/// `struct io_uring_buf` (uring_backend.cpp checks that they match). The last two bytes
/// of entry 0 are the ring's tail, which only the loop thread writes.
struct ring_entry {
  std::uint64_t addr;
  std::uint32_t len;
  std::uint16_t bid;
  std::uint16_t tail; ///< entry 0: the ring's tail; the others: unused
};

/// Where a lent buffer goes back to (a backend's receive buffer pool). Loop thread.
///
/// A pool whose buffers the kernel picks from a ring (io_uring's provided buffers)
/// describes that ring here, and a buffer of it goes back inline: written at the ring's
/// tail, the tail moved on (docs/performance.md: no call per message). Every other
/// buffer, and every buffer while a receiver waits for one, goes through return_buffer().
class buffer_pool {
public:
  void give_back(std::uint32_t id) noexcept {
    if (id < ring_ids_) { // a buffer of the ring, and no receiver starved of one
      --in_use_;
      return put_in_ring(id);
    }
    return_buffer(id);
  }

  /// A receiver waits for a buffer to come back (the io_context says so): every buffer
  /// then goes back through return_buffer(), which tells the io_context.
  void set_starving(bool on) noexcept {
    starving_ = on;
    ring_ids_ = on ? 0 : ring_count_;
  }

protected:
  ~buffer_pool() = default;
  virtual void return_buffer(std::uint32_t id) noexcept = 0;

  // Buffer `id` (one of the ring shown) goes into the ring at its tail, for the kernel to
  // pick: the only place that writes ring entries.
  void put_in_ring(std::uint32_t id) noexcept {
    std::atomic_ref<std::uint16_t> tail(ring_[0].tail);
    const std::uint16_t t = tail.load(std::memory_order_relaxed);
    ring_entry& e = ring_[t & ring_mask_];
    e.addr = reinterpret_cast<std::uintptr_t>(ring_addr_[id]);
    e.len = ring_len_;
    e.bid = static_cast<std::uint16_t>(id);
    tail.store(static_cast<std::uint16_t>(t + 1), std::memory_order_release);
  }

  // Shows the inline path a ring of `count` buffers (the first `count` ids), buffer i
  // at addr[i], `len` bytes each; called again when the ring grows.
  void show_ring(ring_entry* ring, std::uint32_t mask, std::byte* const* addr, std::uint32_t count,
                 std::uint32_t len) noexcept {
    ring_ = ring;
    ring_mask_ = mask;
    ring_addr_ = addr;
    ring_count_ = count;
    ring_len_ = len;
    ring_ids_ = starving_ ? 0 : count;
  }

  std::uint32_t in_use_ = 0; ///< buffers lent out

private:
  // The inline path's view of the ring. It takes ids below ring_ids_: the ring's
  // buffers, or none while a receiver is starving (or there is no ring).
  std::uint32_t ring_ids_ = 0;
  ring_entry* ring_ = nullptr;
  std::byte* const* ring_addr_ = nullptr;
  std::uint32_t ring_count_ = 0;
  std::uint32_t ring_len_ = 0;
  std::uint32_t ring_mask_ = 0;
  bool starving_ = false;
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
