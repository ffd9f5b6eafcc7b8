// event and channel: waits, hand-over order, backpressure, close, cancellation, and
// destruction of either side at every state.
#include <sluice/detail/io_awaiter.hpp>
#include <sluice/sluice.hpp>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

using namespace sluice;
using namespace std::chrono_literals;

TEST_CASE("event: wait() completes once set(), at once when already set, and again after reset()") {
  io_context io;
  event ev(io);
  std::vector<std::string> log;
  auto waiter = [&](std::string name) -> task<void> {
    auto r = co_await ev.wait();
    log.push_back(name + (r ? " ok" : " failed"));
  };
  auto setter = [&]() -> task<void> {
    co_await yield();
    log.push_back("set");
    ev.set();
    co_return;
  };
  sync_wait(io, when_all(waiter("a"), waiter("b"), setter()));
  CHECK(log == std::vector<std::string>{"set", "a ok", "b ok"});
  CHECK(ev.is_set());
  log.clear();
  sync_wait(io, waiter("c")); // set: no wait
  CHECK(log == std::vector<std::string>{"c ok"});
  ev.reset();
  CHECK_FALSE(ev.is_set());
  auto r = sync_wait(io, with_timeout(ev.wait(), 20ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
}

TEST_CASE("event: a waiter stopped through its token, or left when the event is destroyed, "
          "fails with operation_aborted") {
  io_context io;
  std::stop_source src;
  auto ev = std::make_unique<event>(io);
  auto waiter = [&]() -> task<result<void>> { co_return co_await ev->wait(); };
  auto stopper = [&]() -> task<void> {
    co_await yield();
    src.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(waiter(), src.get_token()), stopper()));
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);

  auto destroyer = [&]() -> task<void> {
    co_await yield();
    ev.reset(); // destroys the event under the waiter
  };
  auto [r2, ignored2] = sync_wait(io, when_all(waiter(), destroyer()));
  REQUIRE(!r2);
  CHECK(r2.error() == errc::operation_aborted);
}

TEST_CASE("event: destroyed after set() but before its waiters resumed, nothing touches it") {
  io_context io;
  auto ev = std::make_unique<event>(io);
  int resumed = 0;
  auto waiter = [&]() -> task<void> {
    auto r = co_await ev->wait();
    if (r) ++resumed;
  };
  auto setter = [&]() -> task<void> {
    co_await yield();
    ev->set();
    ev.reset(); // the waiters are released: they resume next turn, without the event
    co_return;
  };
  sync_wait(io, when_all(waiter(), waiter(), setter()));
  CHECK(resumed == 2);
}

TEST_CASE("channel: values come out in order; a full channel holds the sender back") {
  io_context io;
  channel<int> ch(io, 2);
  std::vector<std::string> log;
  auto producer = [&]() -> task<void> {
    for (int i = 0; i < 5; ++i) {
      auto r = co_await ch.send(int(i));
      REQUIRE(r);
      log.push_back(fmt::format("sent {} (held {})", i, ch.size()));
    }
    ch.close();
  };
  auto consumer = [&]() -> task<std::vector<int>> {
    std::vector<int> got;
    co_await yield();
    co_await yield(); // the producer has filled the channel and waits
    CHECK(ch.full());
    for (;;) {
      auto v = co_await ch.recv();
      if (!v) {
        CHECK(v.error() == errc::channel_closed);
        break;
      }
      got.push_back(*v);
    }
    co_return got;
  };
  auto [ignored, got] = sync_wait(io, when_all(producer(), consumer()));
  CHECK(got == std::vector<int>{0, 1, 2, 3, 4});
  REQUIRE(log.size() == 5);
  CHECK(log[0] == "sent 0 (held 1)");
  CHECK(log[1] == "sent 1 (held 2)");
}

TEST_CASE("channel: waiting receivers are served in arrival order, straight from send()") {
  io_context io;
  channel<std::string> ch(io, 1);
  std::vector<std::string> log;
  auto receiver = [&](int id) -> task<void> {
    auto v = co_await ch.recv();
    REQUIRE(v);
    log.push_back(fmt::format("{}:{}", id, *v));
  };
  auto sender = [&]() -> task<void> {
    co_await yield();
    for (const char* s : {"x", "y", "z"})
      REQUIRE(ch.try_send(std::string(s))); // each one goes to a waiting receiver
    CHECK(ch.empty());
    co_return;
  };
  sync_wait(io, when_all(receiver(1), receiver(2), receiver(3), sender()));
  CHECK(log == std::vector<std::string>{"1:x", "2:y", "3:z"});
}

TEST_CASE("channel: try_send keeps a value it cannot queue; close drains, then fails") {
  io_context io;
  channel<std::unique_ptr<int>> ch(io, 1);
  auto a = std::make_unique<int>(1);
  auto b = std::make_unique<int>(2);
  CHECK(ch.try_send(std::move(a)));
  CHECK(a == nullptr);
  CHECK_FALSE(ch.try_send(std::move(b))); // full
  REQUIRE(b != nullptr);
  CHECK(*b == 2);
  ch.close();
  CHECK_FALSE(ch.try_send(std::move(b))); // closed
  REQUIRE(b != nullptr);
  auto s = sync_wait(io, as_task(ch.send(std::move(b))));
  REQUIRE(!s);
  CHECK(s.error() == errc::channel_closed);
  CHECK(s.error().message().find("channel send") != std::string::npos);
  auto v = sync_wait(io, as_task(ch.recv()));
  REQUIRE(v);
  CHECK(**v == 1);
  auto end = sync_wait(io, as_task(ch.recv()));
  REQUIRE(!end);
  CHECK(end.error() == errc::channel_closed);
  CHECK_FALSE(ch.try_recv());
  CHECK_THROWS_AS(channel<int>(io, 0), std::invalid_argument);
}

TEST_CASE("channel: close() fails a waiting sender and wakes every waiting receiver") {
  io_context io;
  channel<int> full(io, 1);
  REQUIRE(full.try_send(1));
  channel<int> empty(io, 1);
  auto send_waits = [&]() -> task<result<void>> { co_return co_await full.send(2); };
  auto recv_waits = [&]() -> task<result<int>> { co_return co_await empty.recv(); };
  auto closer = [&]() -> task<void> {
    co_await yield();
    full.close();
    empty.close();
  };
  auto [s, r1, r2, ignored] =
      sync_wait(io, when_all(send_waits(), recv_waits(), recv_waits(), closer()));
  REQUIRE(!s);
  CHECK(s.error() == errc::channel_closed);
  REQUIRE(!r1);
  CHECK(r1.error() == errc::channel_closed);
  REQUIRE(!r2);
  CHECK(r2.error() == errc::channel_closed);
  CHECK(full.size() == 1); // the queued value is still there to receive
}

TEST_CASE("channel: a cancelled recv takes nothing, a cancelled send queues nothing") {
  io_context io;
  channel<int> ch(io, 1);
  auto r = sync_wait(io, with_timeout(ch.recv(), 10ms));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
  REQUIRE(ch.try_send(7));
  auto s = sync_wait(io, with_timeout(ch.send(8), 10ms));
  REQUIRE(!s);
  CHECK(s.error() == errc::timed_out);
  CHECK(ch.size() == 1);
  CHECK(ch.try_recv() == 7);
  CHECK_FALSE(ch.try_recv());
  // Stopped before it waits at all.
  std::stop_source src;
  src.request_stop();
  auto early = sync_wait(io, as_task(ch.recv()), src.get_token());
  REQUIRE(!early);
  CHECK(early.error() == errc::operation_aborted);
}

TEST_CASE("channel: destroyed with coroutines waiting on both sides, or with values it was "
          "handing over; each side may also be destroyed while it waits") {
  io_context io;
  auto ch = std::make_unique<channel<std::string>>(io, 1);
  REQUIRE(ch->try_send(std::string(100, 'a'))); // heap-allocated: ASan sees a leak or reuse
  auto sender = [&]() -> task<result<void>> { co_return co_await ch->send(std::string(100, 'b')); };
  auto destroyer = [&]() -> task<void> {
    co_await yield();
    ch.reset();
    co_return;
  };
  auto [s, ignored] = sync_wait(io, when_all(sender(), destroyer()));
  REQUIRE(!s);
  CHECK(s.error() == errc::operation_aborted);

  // A value handed to a receiver whose frame is destroyed before it resumed.
  ch = std::make_unique<channel<std::string>>(io, 1);
  {
    {
      async_scope scope(io);
      scope.spawn([](channel<std::string>& c) -> task<void> {
        auto v = co_await c.recv();
        FAIL("resumed with " << (v ? *v : v.error().message()));
      }(*ch));
      auto hand = [&]() -> task<void> {
        co_await yield();
        CHECK(ch->try_send(std::string(100, 'c'))); // into the waiting receiver
        co_return;
      };
      sync_wait(io, hand());
      // scope destroyed here, with the receiver released but not resumed
    }
  }
  CHECK(ch->empty());
  // A sender destroyed while it waits: its value goes with it, the channel is intact.
  REQUIRE(ch->try_send(std::string("kept")));
  {
    async_scope scope(io);
    scope.spawn([](channel<std::string>& c) -> task<void> {
      (void)co_await c.send(std::string(100, 'd'));
      FAIL("the sender resumed");
    }(*ch));
    auto step = []() -> task<void> { co_await yield(); };
    sync_wait(io, step());
  }
  auto v = ch->try_recv();
  REQUIRE(v);
  CHECK(*v == "kept");
  CHECK(ch->empty());
}

TEST_CASE("channel: a receiver on another thread's stop is cancelled promptly", "[threads]") {
  io_context io;
  channel<int> ch(io, 4);
  std::stop_source src;
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    src.request_stop();
  });
  auto r = sync_wait(io, as_task(ch.recv()), src.get_token());
  t.join();
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

namespace {
// An awaiter that starts its operation as it is: of no kind (op_code::none).
class no_kind_awaiter : public detail::io_awaiter {
public:
  explicit no_kind_awaiter(io_context& io) noexcept { op_.ctx = &io; }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return start(h, detail::stop_of(h));
  }
  std::error_code await_resume() noexcept {
    finish();
    return op_.error;
  }
};
} // namespace

TEST_CASE("An operation of no kind, started as an OS operation, fails with invalid_argument") {
  // A wait that never reaches the OS has op_code::none (the default); starting one as an
  // OS operation is a bug, refused on every backend (by io_context::submit, before any
  // backend sees it) rather than run as something else.
  io_context io;
  const std::error_code ec = sync_wait(io, [](io_context& c) -> task<std::error_code> {
    co_return co_await no_kind_awaiter(c);
  }(io));
  CHECK(ec == std::errc::invalid_argument);
  // The loop goes on as before.
  sync_wait(io, [](io_context& c) -> task<void> { co_await yield(c); }(io));
}

#ifndef _WIN32
namespace {
// Descriptor 0 made a pipe of the test's own while it lives (what was there is put
// back after): intact() says whether that pipe is still descriptor 0.
class descriptor_zero_watch {
public:
  descriptor_zero_watch() {
    saved_ = ::fcntl(0, F_DUPFD_CLOEXEC, 3); // -1: descriptor 0 was not open
    REQUIRE(::pipe(pipe_) == 0);
    REQUIRE(::dup2(pipe_[0], 0) == 0);
    struct stat st {};
    REQUIRE(::fstat(pipe_[0], &st) == 0);
    inode_ = st.st_ino;
  }
  descriptor_zero_watch(const descriptor_zero_watch&) = delete;
  descriptor_zero_watch& operator=(const descriptor_zero_watch&) = delete;
  ~descriptor_zero_watch() {
    if (saved_ >= 0) {
      ::dup2(saved_, 0);
      ::close(saved_);
    } else {
      ::close(0);
    }
    ::close(pipe_[0]);
    ::close(pipe_[1]);
  }
  bool intact() const {
    struct stat st {};
    return ::fstat(0, &st) == 0 && st.st_ino == inode_;
  }

private:
  int saved_ = -1;
  int pipe_[2] = {-1, -1};
  ino_t inode_ = 0;
};
} // namespace

TEST_CASE("Waits that are no OS operation, destroyed after they completed but before they "
          "resumed, close no descriptor") {
  // Regression: such a wait's operation kind defaulted to accept and its result to 0,
  // so discarding the result nobody saw closed descriptor 0: stdin, or the socket or
  // ring that had been given that number since (seen as a ring setup failing with
  // EBADF, and as connections that went silent).
  descriptor_zero_watch zero;
  int resumed = 0;
  {
    io_context io;
    event ev(io);
    channel<int> ch(io, 1);
    spawn(io, [](event& e, int& r) -> task<void> {
      (void)co_await e.wait();
      ++r;
    }(ev, resumed));
    spawn(io, [](channel<int>& c, int& r) -> task<void> {
      (void)co_await c.recv();
      ++r;
    }(ch, resumed));
    sync_wait(io, [](io_context& c) -> task<void> { co_await yield(c); }(io)); // both wait
    ev.set();                // the event's waiter completes: it resumes next turn
    REQUIRE(ch.try_send(7)); // so does the channel's, handed the value
  }                          // ~io_context: both frames go with their completions unseen
  CHECK(resumed == 0);
  CHECK(zero.intact());
}
#endif
