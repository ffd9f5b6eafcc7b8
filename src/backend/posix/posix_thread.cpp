// CPU affinity on Linux (sched_getaffinity / sched_setaffinity), for the runtime's
// pinned loops.
#include "../backend.hpp"

#include <sched.h>

namespace sluice::detail {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void pin_thread(int cpu) noexcept {
  if (cpu < 0 || cpu >= CPU_SETSIZE) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)::sched_setaffinity(0, sizeof set, &set); // 0: the calling thread
}

} // namespace sluice::detail
