// Per-thread recycling of coroutine frames: include/sluice/detail/frame_pool.hpp.
#include <sluice/detail/frame_pool.hpp>

#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_FRAME_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_FRAME_POOL 0
#endif
#endif
#ifndef SLUICE_FRAME_POOL
#define SLUICE_FRAME_POOL 1
#endif

namespace sluice::detail {

#if SLUICE_FRAME_POOL
namespace {

constexpr std::size_t classes = frame_pool_largest / frame_pool_class;

struct free_frame {
  free_frame* next;
};

// Trivially constructed and destroyed, so that reaching it costs no guard or wrapper
// call; the lists are emptied at thread exit by a reaper registered on first use.
struct frame_lists {
  free_frame* head[classes];
  std::size_t count[classes];
  std::size_t total;
  bool reaper_registered;
  bool gone; // the thread is exiting: frames go straight back to operator delete
};
thread_local frame_lists lists{};

struct lists_reaper {
  ~lists_reaper() {
    lists.gone = true;
    for (std::size_t c = 0; c < classes; ++c)
      while (free_frame* f = lists.head[c]) {
        lists.head[c] = f->next;
        ::operator delete(static_cast<void*>(f), (c + 1) * frame_pool_class);
      }
    lists.total = 0;
  }
};

void register_reaper() {
  lists.reaper_registered = true;
  static thread_local lists_reaper reaper;
  (void)reaper;
}

// The class of a frame of `size` bytes, or `classes` if it is not pooled.
std::size_t class_of(std::size_t size) noexcept {
  if (size == 0 || size > frame_pool_largest) return classes;
  return (size - 1) / frame_pool_class;
}

} // namespace
#endif

void* allocate_frame(std::size_t size) {
#if SLUICE_FRAME_POOL
  const std::size_t c = class_of(size);
  if (c == classes) return ::operator new(size);
  if (!lists.gone) {
    if (free_frame* f = lists.head[c]) {
      lists.head[c] = f->next;
      --lists.count[c];
      --lists.total;
      return f;
    }
  }
  return ::operator new((c + 1) * frame_pool_class); // the whole class: any size reuses it
#else
  return ::operator new(size);
#endif
}

void deallocate_frame(void* frame, std::size_t size) noexcept {
#if SLUICE_FRAME_POOL
  const std::size_t c = class_of(size);
  if (c == classes) {
    ::operator delete(frame, size);
    return;
  }
  if (lists.gone || lists.count[c] >= frame_pool_cap) {
    ::operator delete(frame, (c + 1) * frame_pool_class);
    return;
  }
  if (!lists.reaper_registered) register_reaper();
  auto* f = static_cast<free_frame*>(frame);
  f->next = lists.head[c];
  lists.head[c] = f;
  ++lists.count[c];
  ++lists.total;
#else
  ::operator delete(frame, size);
#endif
}

std::size_t frames_pooled() noexcept {
#if SLUICE_FRAME_POOL
  return lists.gone ? 0 : lists.total;
#else
  return 0;
#endif
}

bool frame_pool_enabled() noexcept { return SLUICE_FRAME_POOL != 0; }

} // namespace sluice::detail
