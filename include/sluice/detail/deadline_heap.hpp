// Deadlines of operations: those in flight, for the backends that keep their own
// timers (Asio, IOCP; io_uring links a timeout to the operation instead), and those
// waiting in the loop (a reader waiting for its stream's receiver, a sender waiting its
// turn, a wait). A binary min-heap whose entries know their place
// (operation::deadline_slot; an operation is in one heap at a time): insert, remove and
// the earliest are O(log n) / O(1), and nothing is allocated once the vector has grown.
#pragma once

#include <chrono>
#include <sluice/detail/operation.hpp>

#include <utility>
#include <vector>

namespace sluice::detail {

class deadline_heap {
public:
  bool empty() const noexcept { return h_.empty(); }
  // Precondition: !empty().
  std::int64_t earliest() const noexcept { return h_.front()->deadline; }

  void insert(operation& op) {
    op.deadline_slot = static_cast<std::uint32_t>(h_.size());
    h_.push_back(&op);
    up(op.deadline_slot);
  }

  // Removes op if it is in the heap.
  void remove(operation& op) noexcept {
    const std::uint32_t i = op.deadline_slot;
    if (i == no_deadline_slot) return;
    op.deadline_slot = no_deadline_slot;
    operation* last = h_.back();
    h_.pop_back();
    if (last == &op) return;
    h_[i] = last;
    last->deadline_slot = i;
    if (!up(i)) down(i);
  }

  // The earliest operation whose deadline is at or before `now`, removed; or nullptr.
  operation* pop_expired(std::int64_t now) noexcept {
    if (h_.empty() || h_.front()->deadline > now) return nullptr;
    operation* op = h_.front();
    remove(*op);
    return op;
  }

  void clear() noexcept {
    for (operation* op : h_)
      op->deadline_slot = no_deadline_slot;
    h_.clear();
  }

private:
  void place(std::uint32_t i, operation* op) noexcept {
    h_[i] = op;
    op->deadline_slot = i;
  }
  bool up(std::uint32_t i) noexcept {
    bool moved = false;
    while (i > 0) {
      const std::uint32_t parent = (i - 1) / 2;
      if (h_[parent]->deadline <= h_[i]->deadline) break;
      operation* p = h_[parent];
      place(parent, h_[i]);
      place(i, p);
      i = parent;
      moved = true;
    }
    return moved;
  }
  void down(std::uint32_t i) noexcept {
    const auto n = static_cast<std::uint32_t>(h_.size());
    for (;;) {
      std::uint32_t least = i;
      const std::uint32_t l = 2 * i + 1, r = 2 * i + 2;
      if (l < n && h_[l]->deadline < h_[least]->deadline) least = l;
      if (r < n && h_[r]->deadline < h_[least]->deadline) least = r;
      if (least == i) return;
      operation* x = h_[least];
      place(least, h_[i]);
      place(i, x);
      i = least;
    }
  }

  std::vector<operation*> h_;
};

// Now, on the clock deadlines are measured with (steady_clock, ns since its epoch).
inline std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace sluice::detail
