// signal_set: each set receives exactly the signals it asked for; two sets of the
// same signal both see it; signals caught while nobody waits are kept.
#include "../support.hpp"

#include <csignal>

using namespace sluice;
using namespace test;

namespace {
#ifdef _WIN32
// The C runtime's signals (raise()); console control events arrive the same way.
constexpr int sig_a = SIGINT, sig_b = SIGTERM;
#else
constexpr int sig_a = SIGHUP, sig_b = SIGUSR1;
#endif
} // namespace

TEST_CASE("Each signal_set receives only the signals it asked for") {
  // Regression: every set shared one process-wide pipe, so raise(SIGUSR1) woke the
  // SIGHUP set and the SIGUSR1 set timed out.
  io_context io;
  signal_set a(io, {sig_a});
  signal_set b(io, {sig_b});
  std::raise(sig_b);
  auto rb = sync_wait(io, with_timeout(b.wait(), std::chrono::seconds(10)));
  REQUIRE(rb);
  CHECK(*rb == sig_b);
  auto ra = sync_wait(io, with_timeout(a.wait(), std::chrono::milliseconds(50)));
  REQUIRE(!ra);
  CHECK(ra.error() == errc::timed_out);
  std::raise(sig_a);
  auto ra2 = sync_wait(io, with_timeout(a.wait(), std::chrono::seconds(10)));
  REQUIRE(ra2);
  CHECK(*ra2 == sig_a);
}

TEST_CASE("Two signal_sets for the same signal both see it, once") {
  io_context io;
  signal_set a(io, {sig_a});
  signal_set b(io, {sig_a, sig_b});
  std::raise(sig_a);
  auto [ra, rb] = sync_wait(io, when_all(with_timeout(a.wait(), std::chrono::seconds(10)),
                                         with_timeout(b.wait(), std::chrono::seconds(10))));
  REQUIRE(ra);
  REQUIRE(rb);
  CHECK(*ra == sig_a);
  CHECK(*rb == sig_a);
  // Delivered once: nothing more is queued for either.
  auto again = sync_wait(io, with_timeout(a.wait(), std::chrono::milliseconds(30)));
  REQUIRE(!again);
  CHECK(again.error() == errc::timed_out);
}

TEST_CASE("A signal caught while nobody waits is kept for the next wait") {
  io_context io;
  signal_set a(io, {sig_a});
  std::raise(sig_a);
  std::raise(sig_a);
  for (int i = 0; i < 2; ++i) {
    auto r = sync_wait(io, with_timeout(a.wait(), std::chrono::seconds(10)));
    REQUIRE(r);
    CHECK(*r == sig_a);
  }
}

TEST_CASE("A signal wait can be cancelled and destroyed while it waits") {
  io_context io;
  signal_set a(io, {sig_a});
  stop_source src;
  auto waiter = [&]() -> task<result<int>> { co_return co_await a.wait(); };
  auto stopper = [&]() -> task<void> {
    co_await yield(io);
    src.request_stop();
  };
  auto [r, ignored] =
      sync_wait(io, when_all(with_stop_token(waiter(), src.get_token()), stopper()));
  (void)ignored;
  REQUIRE(!r);
  CHECK(r.error() == errc::operation_aborted);
}

#ifndef _WIN32
TEST_CASE("The previous disposition comes back when the last set of a signal goes") {
  struct sigaction before {};
  ::sigaction(sig_a, nullptr, &before);
  {
    io_context io;
    signal_set a(io, {sig_a});
    signal_set b(io, {sig_a});
    struct sigaction during {};
    ::sigaction(sig_a, nullptr, &during);
    CHECK(during.sa_handler != before.sa_handler);
  }
  struct sigaction after {};
  ::sigaction(sig_a, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);
}
#endif
