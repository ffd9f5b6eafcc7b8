// Thread-per-core on every backend: a runtime's loops each run on their own thread;
// switch_to moves a coroutine between them, spawn_on runs a task on another loop and
// hands its result (or exception) back, remote work wakes a sleeping loop, and teardown
// releases what was still in flight between loops.
#include "../support.hpp"

#include <set>
#include <sluice/runtime.hpp>
#include <thread>

using namespace sluice;
using namespace test;

namespace {
task<int> add_one(int v) { co_return v + 1; }
task<int> fails() {
  throw std::runtime_error("the task broke");
  co_return 0;
}
task<std::thread::id> where() { co_return std::this_thread::get_id(); }
} // namespace

TEST_CASE("The loops of a runtime run on threads of their own", "[threads]") {
  runtime rt(3);
  REQUIRE(rt.size() == 3);
  std::vector<std::thread::id> ids(3);
  std::vector<io_context*> current(3);
  rt.run([&](io_context& loop, std::size_t i) -> task<void> {
    ids[i] = std::this_thread::get_id();
    current[i] = io_context::current();
    (void)loop;
    co_return;
  });
  CHECK(std::set<std::thread::id>(ids.begin(), ids.end()).size() == 3);
  CHECK(ids[0] == std::this_thread::get_id()); // loop 0 runs on the calling thread
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(current[i] == &rt.loop(i));
}

TEST_CASE("switch_to moves a coroutine between two loops, 100,000 times, each hop on the "
          "target loop's thread",
          "[threads]") {
  runtime rt(2);
  std::thread::id thread_of[2];
  long hops = 0, wrong = 0;
  rt.run([&](io_context& loop, std::size_t i) -> task<void> {
    // Each loop's task runs before anything another loop sends it, on its own thread.
    thread_of[i] = std::this_thread::get_id();
    (void)loop;
    if (i != 0) co_return; // loop 1 only serves
    for (int n = 0; n < 100'000; ++n) {
      const std::size_t to = (n + 1) % 2;
      co_await switch_to(rt.loop(to));
      ++hops;
      if (std::this_thread::get_id() != thread_of[to] || io_context::current() != &rt.loop(to))
        ++wrong;
    }
    co_await switch_to(rt.loop(0)); // ends at home
  });
  CHECK(hops == 100'000);
  CHECK(wrong == 0);
}

TEST_CASE("spawn_on runs a task on another loop and returns its value or rethrows its "
          "exception",
          "[threads]") {
  runtime rt(2);
  int value = 0;
  std::thread::id ran_on, loop1;
  std::string failure;
  rt.run([&](io_context&, std::size_t i) -> task<void> {
    if (i == 1) {
      loop1 = std::this_thread::get_id();
      co_return;
    }
    value = co_await spawn_on(rt.loop(1), add_one(41));
    ran_on = co_await spawn_on(rt.loop(1), where());
    try {
      (void)co_await spawn_on(rt.loop(1), fails());
    } catch (const std::exception& e) {
      failure = e.what();
    }
    // Many at once, awaited out of order.
    std::vector<join_handle<int>> handles;
    for (int k = 0; k < 100; ++k)
      handles.push_back(spawn_on(rt.loop(k % 2), add_one(k)));
    int sum = 0;
    for (auto it = handles.rbegin(); it != handles.rend(); ++it)
      sum += co_await *it;
    value += sum - 5050; // 1 + ... + 100 = 5050
  });
  CHECK(value == 42);
  CHECK(ran_on == loop1);
  CHECK(failure == "the task broke");
}

TEST_CASE("spawn_on from a thread that runs no loop; a handle dropped unawaited lets its "
          "task run to the end",
          "[threads]") {
  runtime rt(1);
  std::atomic<int> ran{0};
  auto count = [&]() -> task<void> {
    ran.fetch_add(1);
    co_return;
  };
  // Before the loop runs, from this (loopless) thread: queued until it does.
  { auto dropped = spawn_on(rt.loop(0), count()); }
  auto kept = spawn_on(rt.loop(0), add_one(1));
  int got = 0;
  rt.run([&](io_context&, std::size_t) -> task<void> {
    got = co_await kept;
    while (ran.load() == 0)
      co_await sleep_for(std::chrono::milliseconds(1));
  });
  CHECK(got == 2);
  CHECK(ran.load() == 1);
}

TEST_CASE("Stopping the coroutine that awaits a join_handle stops the task, and the "
          "awaiter still waits for it to end",
          "[threads]") {
  runtime rt(2);
  std::string outcome;
  bool task_ended = false;
  auto long_sleep = [&]() -> task<void> {
    auto r = co_await sleep_for(std::chrono::seconds(30));
    outcome = r ? "slept" : (r.error() == errc::operation_aborted ? "aborted" : "other");
    task_ended = true;
  };
  rt.run([&](io_context&, std::size_t i) -> task<void> {
    if (i != 0) co_return;
    stop_source stop;
    auto waiter = [&]() -> task<void> { co_await spawn_on(rt.loop(1), long_sleep()); };
    auto stopper = [&]() -> task<void> {
      co_await sleep_for(std::chrono::milliseconds(20));
      stop.request_stop();
    };
    (void)co_await when_all(with_stop_token(waiter(), stop.get_token()), stopper());
    CHECK(task_ended); // seen from loop 0 after the handle resumed it
  });
  CHECK(outcome == "aborted");
}

TEST_CASE("A spawn_on task whose loop is destroyed before it starts fails with "
          "operation_aborted") {
  io_context home;
  auto away = std::make_unique<io_context>();
  auto h = spawn_on(*away, add_one(1));
  away.reset(); // never ran: its queued start is dropped, and says so
  std::string what;
  auto body = [&]() -> task<void> {
    try {
      (void)co_await h;
    } catch (const std::system_error& e) {
      what = e.what();
      CHECK(e.code() == errc::operation_aborted);
    }
  };
  sync_wait(home, body());
  CHECK(what.find("destroyed before it started") != std::string::npos);
}

TEST_CASE("Remote work wakes a sleeping loop: four threads post 10,000 nodes each, every "
          "one runs once on the loop thread",
          "[threads]") {
  io_context io;
  constexpr int producers = 4, each = 10'000;
  struct counted : detail::remote_node {
    std::atomic<int>* runs = nullptr;
    std::thread::id* loop = nullptr;
    bool* wrong_thread = nullptr;
  };
  std::vector<counted> nodes(producers * each);
  std::atomic<int> runs{0};
  std::thread::id loop_thread;
  bool wrong_thread = false;
  for (auto& n : nodes) {
    n.runs = &runs;
    n.loop = &loop_thread;
    n.wrong_thread = &wrong_thread;
    n.run = [](detail::ready_node& r) noexcept {
      auto& c = static_cast<counted&>(r);
      if (std::this_thread::get_id() != *c.loop) *c.wrong_thread = true;
      c.runs->fetch_add(1, std::memory_order_relaxed);
    };
  }
  auto body = [&]() -> task<void> {
    loop_thread = std::this_thread::get_id();
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
      threads.emplace_back([&, p] {
        for (int k = 0; k < each; ++k) {
          io.post_remote(nodes[static_cast<std::size_t>(p * each + k)]);
          if (k % 1000 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      });
    while (runs.load() < producers * each)
      co_await sleep_for(std::chrono::milliseconds(5)); // the loop sleeps in between
    for (auto& t : threads)
      t.join();
  };
  sync_wait(io, body());
  CHECK(runs.load() == producers * each);
  CHECK_FALSE(wrong_thread);
}

TEST_CASE("A loop's stats count its operations in flight, its tasks and its receive "
          "buffers") {
  io_context io;
  auto [c, s] = sync_wait(io, connected_pair(io));
  io_context::stats_t idle, receiving;
  auto body = [&]() -> task<void> {
    idle = io.stats();
    auto w = co_await c.send_all(bytes("hello"));
    REQUIRE(w);
    auto got = co_await s.recv_some(); // keeps its lent buffer while it looks
    REQUIRE(got);
    receiving = io.stats();
  };
  sync_wait(io, body());
  CHECK(idle.buffers >= 1);
  CHECK(idle.buffers_in_use == 0);
  CHECK(receiving.buffers_in_use == 1);
  CHECK(receiving.spawned == 0);
}

TEST_CASE("runtime::run rethrows a loop's exception after every loop has stopped", "[threads]") {
  runtime rt(2);
  bool other_finished = false;
  CHECK_THROWS_WITH(rt.run([&](io_context&, std::size_t i) -> task<void> {
    if (i == 1) throw std::runtime_error("loop 1 broke");
    co_await sleep_for(std::chrono::milliseconds(5));
    other_finished = true;
  }),
                    "loop 1 broke");
  CHECK(other_finished);
}

TEST_CASE("Pinned loops run on one CPU each", "[threads]") {
  const auto cpus = runtime::allowed_cpus();
  if (cpus.empty()) {
    WARN("this platform reports no CPU affinity: skipped");
    return;
  }
  runtime::options o;
  o.threads = 2;
  o.pin = true;
  runtime rt(o);
  std::vector<std::vector<int>> seen(2);
  rt.run([&](io_context&, std::size_t i) -> task<void> {
    seen[i] = runtime::allowed_cpus();
    co_return;
  });
  CHECK(seen[0] == std::vector<int>{cpus[0]});
  CHECK(seen[1] == std::vector<int>{cpus[1 % cpus.size()]});
}
