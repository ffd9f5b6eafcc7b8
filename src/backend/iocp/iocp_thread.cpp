// CPU affinity on Windows (GetProcessAffinityMask / SetThreadAffinityMask), for the
// runtime's pinned loops.
#include "../backend.hpp"

#include <windows.h>

namespace sluice::detail {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  DWORD_PTR process = 0, system = 0;
  if (!GetProcessAffinityMask(GetCurrentProcess(), &process, &system)) return cpus;
  // The calling thread's own mask: Windows only tells it by setting another one, so set
  // the process's (a superset) and put the old one back at once.
  DWORD_PTR mask = process;
  if (const DWORD_PTR old = SetThreadAffinityMask(GetCurrentThread(), process); old != 0) {
    SetThreadAffinityMask(GetCurrentThread(), old);
    mask = old;
  }
  for (int c = 0; c < static_cast<int>(sizeof(DWORD_PTR) * 8); ++c)
    if ((mask >> c) & 1) cpus.push_back(c);
  return cpus;
}

void pin_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= static_cast<int>(sizeof(DWORD_PTR) * 8)) return;
  (void)SetThreadAffinityMask(GetCurrentThread(), DWORD_PTR(1) << cpu);
}

} // namespace sluice::detail
