// Run by tests/peers/loop_thread_check.py: spawn() from a thread other than the one
// running the loop must abort with a message naming the call (in builds with
// SLUICE_CHECKS, the default for debug builds). Exits 77 where the checks are off.
#include <sluice/sluice.hpp>

#include <cstdio>
#include <thread>

using namespace sluice;

int main() {
  if (!io_context::loop_thread_checks()) {
    std::puts("loop-thread checks are compiled out of this build");
    return 77;
  }
  io_context io;
  bool started = false;
  auto waiting = [&]() -> task<void> {
    started = true;
    (void)co_await sleep_for(io, std::chrono::seconds(5));
  };
  spawn(io, waiting());
  std::thread intruder([&] {
    while (!started)
      std::this_thread::yield();
    auto nothing = []() -> task<void> { co_return; };
    spawn(io, nothing()); // wrong thread: must abort here
  });
  io.run();
  intruder.join();
  std::puts("no abort: the misuse went unnoticed");
  return 1;
}
