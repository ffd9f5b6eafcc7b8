// Where threads meet the loop: stop requests, cancellations and post_remote() from
// other threads while the loop runs, on every backend. Run under ThreadSanitizer in CI
// (the [threads] tag), and under ASan with everything else.
#include "../support.hpp"

#include <atomic>
#include <thread>
#include <vector>

using namespace sluice;
using namespace test;

TEST_CASE("Operations cancelled from other threads while the loop runs all end aborted or done",
          "[threads]") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  constexpr int rounds = 200;
  int aborted = 0, completed = 0;
  for (int round = 0; round < rounds; ++round) {
    std::stop_source src; // stopped from another thread, at a random moment
    auto waiter = [&]() -> task<void> {
      std::array<std::byte, 16> buf;
      auto timer = co_await with_stop_token(
          as_task(sleep_for(io, std::chrono::microseconds(round * 5))), src.get_token());
      auto r = co_await with_stop_token(as_task(s.recv(buf)), src.get_token());
      if (!r && r.error() == errc::operation_aborted)
        ++aborted;
      else if (r)
        ++completed;
      (void)timer;
    };
    std::thread stopper([&, round] {
      std::this_thread::sleep_for(std::chrono::microseconds((round % 7) * 50));
      src.request_stop();
    });
    sync_wait(io, waiter());
    stopper.join();
  }
  CHECK(aborted + completed == rounds);
  CHECK(completed == 0); // nobody sent anything
}

TEST_CASE("post_remote from many threads: every function runs once, on the loop thread",
          "[threads]") {
  io_context io;
  constexpr int threads = 4, each = 500;
  std::atomic<int> posted{0};
  int ran = 0; // only the loop thread touches it
  const auto loop_thread = std::this_thread::get_id();
  bool wrong_thread = false;
  std::vector<std::thread> posters;
  for (int t = 0; t < threads; ++t)
    posters.emplace_back([&] {
      for (int i = 0; i < each; ++i) {
        io.post_remote([&] {
          ++ran;
          wrong_thread = wrong_thread || std::this_thread::get_id() != loop_thread;
        });
        posted.fetch_add(1);
      }
    });
  auto wait_all = [&]() -> task<void> {
    while (ran < threads * each)
      (void)co_await sleep_for(io, std::chrono::microseconds(100));
  };
  sync_wait(io, wait_all());
  for (auto& t : posters)
    t.join();
  CHECK(ran == threads * each);
  CHECK_FALSE(wrong_thread);
}

namespace {
// connected_pair without Catch2's assertions, which are not thread-safe: for threads.
task<bool> quiet_pair(io_context& io, tcp::stream& c, tcp::stream& s) {
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  if (!acc) co_return false;
  auto [cr, sr] = co_await when_all(tcp::connect(io, acc->local_endpoint()), acc->accept());
  if (!cr || !sr) co_return false;
  c = std::move(*cr);
  s = std::move(*sr);
  co_return true;
}

// Owns its streams: they live exactly as long as the operations on them.
task<void> ping_pong(tcp::stream c, tcp::stream s, std::atomic<int>& exchanged) {
  std::array<std::byte, 4> buf;
  for (;;) {
    if (!co_await c.send_all(bytes("ping"))) co_return;
    auto n = co_await s.recv(buf);
    if (!n || *n == 0) co_return;
    exchanged.fetch_add(1, std::memory_order_relaxed);
  }
}
} // namespace

TEST_CASE("Stopping several loops from one thread while each serves traffic", "[threads]") {
  constexpr int loops = 3;
  std::array<std::atomic<io_context*>, loops> running{};
  std::atomic<int> exchanged{0};
  std::atomic<bool> stops_done{false}; // stop() must return before its object goes
  std::vector<std::thread> runners;
  for (int i = 0; i < loops; ++i)
    runners.emplace_back([&, i] {
      io_context io; // built, run and destroyed on this thread
      tcp::stream c, s;
      if (!sync_wait(io, quiet_pair(io, c, s))) std::abort();
      spawn(io, ping_pong(std::move(c), std::move(s), exchanged));
      running[i] = &io;
      io.run(); // until stop(); then ~io_context reaps the operations in flight, here
      while (!stops_done)
        std::this_thread::yield();
    });
  for (auto& r : running)
    while (r.load() == nullptr)
      std::this_thread::yield();
  while (exchanged.load() < 100 * loops)
    std::this_thread::yield();
  for (auto& r : running)
    r.load()->stop();
  stops_done = true;
  for (auto& t : runners)
    t.join();
  CHECK(exchanged.load() >= 100 * loops);
}
