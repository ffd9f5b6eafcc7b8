// Coroutine frames, recycled per thread. A request served by a few coroutines
// allocates their frames each time; frames of the same sizes come back at once, so a
// small per-thread free list per size class turns malloc/free into a pointer swap
// (docs/runtime.md, "Frame recycling").
//
// Size classes of 64 bytes up to 4 KiB; each keeps at most `frame_pool_cap` frames,
// and larger frames go straight to operator new. A frame may be freed on another thread
// than the one that allocated it: it then joins that thread's lists. Builds with
// AddressSanitizer bypass the lists, so that a use after free of a frame is still
// caught.
#pragma once

#include <cstddef>
#include <sluice/export.hpp>

namespace sluice::detail {

inline constexpr std::size_t frame_pool_class = 64;
inline constexpr std::size_t frame_pool_largest = 4096;
inline constexpr std::size_t frame_pool_cap = 256; // frames kept per size class

SLUICE_API void* allocate_frame(std::size_t size);
SLUICE_API void deallocate_frame(void* frame, std::size_t size) noexcept;

// Frames now kept by this thread's lists (for tests).
SLUICE_API std::size_t frames_pooled() noexcept;
// Whether frames are recycled in this build (not under AddressSanitizer).
SLUICE_API bool frame_pool_enabled() noexcept;

// The operator new / delete of a promise type whose frames are recycled.
struct pooled_frame {
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    deallocate_frame(frame, size);
  }
};

} // namespace sluice::detail
