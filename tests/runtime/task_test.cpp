#include <sluice/sluice.hpp>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;

namespace {
task<int> value(int v) { co_return v; }
task<void> nothing() { co_return; }
task<int> add(int a, int b) { co_return co_await value(a) + co_await value(b); }
task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}
} // namespace

TEST_CASE("A task is lazy: its body runs only when awaited") {
  io_context io;
  bool ran = false;
  auto body = [&]() -> task<void> {
    ran = true;
    co_return;
  };
  auto t = body();
  CHECK_FALSE(ran);
  sync_wait(io, std::move(t));
  CHECK(ran);
}

TEST_CASE("A task's value reaches its awaiter") {
  io_context io;
  CHECK(sync_wait(io, add(2, 3)) == 5);
}

TEST_CASE("An exception thrown in a task propagates to its awaiter") {
  io_context io;
  auto outer = []() -> task<std::string> {
    try {
      co_await thrower();
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "not thrown";
  };
  CHECK(sync_wait(io, outer()) == "boom");
  CHECK_THROWS_WITH(sync_wait(io, thrower()), "boom");
}

TEST_CASE("A million synchronously completing awaits do not grow the stack") {
  io_context io;
  auto loop = []() -> task<long> {
    long sum = 0;
    for (int i = 0; i < 1'000'000; ++i) {
      co_await nothing();
      sum += co_await value(1);
    }
    co_return sum;
  };
  CHECK(sync_wait(io, loop()) == 1'000'000);
}

TEST_CASE("A task is move-only and can be awaited after being moved") {
  static_assert(!std::is_copy_constructible_v<task<int>>);
  io_context io;
  auto t = value(7);
  auto u = std::move(t);
  CHECK_FALSE(t.valid());
  CHECK(sync_wait(io, std::move(u)) == 7);
}

TEST_CASE("when_all returns every child's value, in argument order") {
  io_context io;
  auto [a, b, c] = sync_wait(io, when_all(value(1), add(2, 3), nothing()));
  CHECK(a == 1);
  CHECK(b == 5);
  (void)c;
  std::vector<task<int>> v;
  for (int i = 0; i < 10; ++i)
    v.push_back(value(i));
  auto all = sync_wait(io, when_all(std::move(v)));
  REQUIRE(all.size() == 10);
  CHECK(all[9] == 9);
}

TEST_CASE("when_all waits for children that suspend, then rethrows the first exception") {
  io_context io;
  bool slow_done = false;
  auto slow = [&]() -> task<void> {
    (void)co_await sleep_for(20ms);
    slow_done = true;
  };
  auto failing = []() -> task<int> {
    (void)co_await sleep_for(1ms);
    throw std::runtime_error("child failed");
  };
  CHECK_THROWS_WITH(sync_wait(io, when_all(slow(), failing())), "child failed");
  CHECK(slow_done);
}

TEST_CASE("spawn runs detached work and run() returns when it is done") {
  io_context io;
  int count = 0;
  auto work = [&](int n) -> task<void> {
    (void)co_await sleep_for(1ms);
    count += n;
  };
  spawn(io, work(1));
  spawn(io, work(2));
  io.run();
  CHECK(count == 3);
  CHECK(io.spawned() == 0);
}

namespace {
std::string last_spawn_error;
void capture(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    last_spawn_error = ex.what();
  }
}
} // namespace

TEST_CASE("An exception escaping a spawned task is reported with its message") {
  io_context io;
  auto previous = set_spawn_error_handler(capture);
  auto bad = []() -> task<void> {
    (void)co_await sleep_for(1ms);
    throw std::runtime_error("spawned task broke");
  };
  spawn(io, bad());
  io.run();
  set_spawn_error_handler(previous);
  CHECK(last_spawn_error == "spawned task broke");
}

TEST_CASE("stop() from another thread makes run() return", "[threads]") {
  io_context io;
  auto forever = []() -> task<void> {
    while (co_await sleep_for(10s)) {
    }
  };
  std::stop_source src;
  spawn(io, forever(), src.get_token());
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    io.stop();
  });
  io.run();
  t.join();
  CHECK(io.stopped());
  // Let the spawned task end so that its frame is released.
  io.restart();
  src.request_stop();
  io.run();
  CHECK(io.spawned() == 0);
}

TEST_CASE("post_remote runs a function on the loop thread", "[threads]") {
  io_context io;
  std::thread::id loop_thread;
  bool ran = false;
  auto wait = [&]() -> task<void> {
    while (!ran)
      (void)co_await sleep_for(1ms);
  };
  std::thread t(
      [&] { io.post_remote([&] { loop_thread = std::this_thread::get_id(), ran = true; }); });
  sync_wait(io, wait());
  t.join();
  CHECK(loop_thread == std::this_thread::get_id());
}

TEST_CASE("io_context says which backend it runs on") {
  io_context io;
  CHECK(
      (io.backend_name() == "uring" || io.backend_name() == "asio" || io.backend_name() == "iocp"));
}

TEST_CASE("An unknown forced backend is a clear error, never a silent fallback") {
  try {
    io_context io("bogus");
    FAIL("constructed");
  } catch (const std::system_error& e) {
    CHECK(e.code() == errc::unsupported_backend);
    CHECK(std::string(e.what()).find("'bogus'") != std::string::npos);
  }
}

TEST_CASE("An io_context may be run by a thread other than the one that built it", "[threads]") {
  io_context io;
  int result = 0;
  auto work = [&]() -> task<void> {
    (void)co_await sleep_for(1ms);
    result = 42;
  };
  spawn(io, work());
  std::thread t([&] { io.run(); });
  t.join();
  CHECK(result == 42);
}

#if defined(__linux__)
#include <cstdlib>
#include <optional>

namespace {
// Sets an environment variable for a scope, and restores it whatever happens.
struct scoped_env {
  std::string name;
  std::optional<std::string> saved;
  scoped_env(const char* n, const char* value) : name(n) {
    if (const char* v = std::getenv(n)) saved = v;
    ::setenv(n, value, 1);
  }
  ~scoped_env() {
    if (saved)
      ::setenv(name.c_str(), saved->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};
} // namespace

TEST_CASE("io_uring without an operation sluice needs: Asio (said on stderr), or a clear error "
          "when uring is forced") {
  bool uring_here = true;
  try {
    io_context probe("uring");
  } catch (const std::system_error&) {
    uring_here = false; // e.g. denied by seccomp: nothing to mask
  }
  std::optional<scoped_env> mask(std::in_place, "SLUICE_URING_DISABLE", "op_sendmsg");
  {
    io_context io(""); // the best available (SLUICE_BACKEND is not read)
    CHECK(io.backend_name() == "asio");
  }
  if (uring_here) {
    try {
      io_context io("uring");
      FAIL("a forced uring without IORING_OP_SENDMSG started");
    } catch (const std::system_error& e) {
      CHECK(e.code() == errc::backend_unavailable);
      CHECK(std::string(e.what()).find("IORING_OP_SENDMSG") != std::string::npos);
    }
    // Optional features fall back and say so.
    mask.emplace("SLUICE_URING_DISABLE", "op_shutdown,cancel_fd,buf_ring");
    io_context io("uring");
    CHECK(io.backend_description().find("shutdown(2)") != std::string::npos);
    CHECK(io.backend_description().find("per-operation cancel") != std::string::npos);
    CHECK(io.backend_description().find("poll, then read") != std::string::npos);
  }
}

TEST_CASE("io_uring registers its ring fd on the loop thread, unless told not to") {
  std::optional<io_context> probe;
  try {
    probe.emplace("uring");
  } catch (const std::system_error&) {
    return; // no io_uring here (seccomp, old kernel): nothing to register
  }
  const std::string plain = probe->backend_description();
  probe.reset();
  if (plain.find("plain ring") != std::string::npos) {
    // Without SINGLE_ISSUER any thread may enter the ring: never registered.
    io_context io("uring");
    REQUIRE(sync_wait(io, as_task(sleep_for(io, std::chrono::milliseconds(1)))));
    CHECK(io.backend_description().find("ring fd not registered") != std::string::npos);
    return;
  }
  {
    io_context io("uring");
    // Registered when the loop thread enables the ring, and used from then on.
    REQUIRE(sync_wait(io, as_task(sleep_for(io, std::chrono::milliseconds(1)))));
    CHECK(io.backend_description().find("ring fd not registered") == std::string::npos);
  }
  scoped_env mask("SLUICE_URING_DISABLE", "ring_fd");
  io_context io("uring");
  REQUIRE(sync_wait(io, as_task(sleep_for(io, std::chrono::milliseconds(1)))));
  CHECK(io.backend_description().find("ring fd not registered") != std::string::npos);
}
#endif
