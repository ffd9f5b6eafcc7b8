// Running out of file descriptors (POSIX: RLIMIT_NOFILE) is an error with context, and
// loses nothing. Its own executable, so that where the OS has no such limit to lower
// (Windows) it is reported as skipped (exit code 77, ctest's SKIP_RETURN_CODE), not as
// a pass.
#ifdef _WIN32
#include <cstdio>
int main() {
  std::puts("skipped: Windows has no RLIMIT_NOFILE to exhaust");
  return 77;
}
#else
#include "../support.hpp"

#include <fcntl.h>
#include <sluice/server.hpp>
#include <sys/resource.h>
#include <unistd.h>

using namespace sluice;
using namespace test;

// Under the sanitizers this executable is built without UBSan's vptr check, which
// needs free descriptors (see tests/CMakeLists.txt).

namespace {
// Lowers RLIMIT_NOFILE to just above the highest descriptor open now and takes every
// free one below it, so that the next descriptor cannot be allocated. release() (or
// the destructor, should a check fail first) gives everything back. No Catch2 check
// runs while the table is full: the checks' own code needs descriptors under UBSan.
class full_fd_table {
public:
  full_fd_table() {
    if (getrlimit(RLIMIT_NOFILE, &old_) != 0) return;
    int highest = 0;
    for (int fd = 0; fd < 4096; ++fd)
      if (fcntl(fd, F_GETFD) != -1) highest = fd;
    rlimit low = old_;
    low.rlim_cur = static_cast<rlim_t>(highest + 1);
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) return;
    lowered_ = true;
    for (int fd; (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
      fillers_.push_back(fd);
  }
  full_fd_table(const full_fd_table&) = delete;
  full_fd_table& operator=(const full_fd_table&) = delete;
  ~full_fd_table() { release(); }

  // Restores the limit and closes the fillers; true if the table had been filled and
  // the limit is back.
  bool release() noexcept {
    for (int fd : fillers_)
      ::close(fd);
    fillers_.clear();
    if (!lowered_) return false;
    lowered_ = false;
    return setrlimit(RLIMIT_NOFILE, &old_) == 0;
  }

private:
  rlimit old_{};
  bool lowered_ = false;
  std::vector<int> fillers_;
};
} // namespace

TEST_CASE("An exhausted fd table fails accept with too_many_open_files; the acceptor survives") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  // Open one client first, then fill the table: the accepted descriptor cannot be
  // allocated.
  auto c = sync_wait(io, tcp::connect(io, acc->local_endpoint()));
  REQUIRE(c);
  full_fd_table table;
  auto r = sync_wait(io, as_task(acc->accept()));
  REQUIRE(table.release());
  REQUIRE(!r);
  CHECK(r.error() == errc::too_many_open_files);
  CHECK(r.error().message().find(acc->local_endpoint().to_string()) != std::string::npos);
  // The pending connection is still there once descriptors are available again.
  auto again = sync_wait(io, as_task(acc->accept()));
  CHECK(again);
}

TEST_CASE("A server out of descriptors pauses accepting (100 ms doubling to 500 ms) with one "
          "log line per pause, then serves the waiting connection") {
  io_context io;
  auto acc = tcp::acceptor::bind(io, endpoint::loopback_v4(0));
  REQUIRE(acc);
  server srv(io, std::move(*acc));
  std::vector<std::string> lines;
  srv.set_log([&](std::string_view m) { lines.emplace_back(m); });
  auto echo_once = [](tcp::stream& s, stop_token) -> task<void> {
    std::array<std::byte, 16> buf;
    auto n = co_await s.recv(buf);
    if (n && *n > 0) (void)co_await s.send_all(std::span(buf).first(*n));
  };
  auto client = tcp::stream::open(io); // its descriptor exists before the table fills
  REQUIRE(client);
  std::string echoed;
  drain_report report;
  full_fd_table* table = nullptr;
  auto peer = [&]() -> task<void> {
    auto connected =
        co_await client->connect(srv.local_endpoint()); // the kernel's backlog holds it

    // Three pauses (100 + 200 + 400 ms), bounded.
    for (int i = 0; i < 500 && lines.size() < 3; ++i)
      (void)co_await sleep_for(io, std::chrono::milliseconds(10));
    REQUIRE(table->release());
    REQUIRE(connected);

    auto sent = co_await client->send_all(bytes("hi"));
    REQUIRE(sent);
    echoed = co_await recv_exactly(*client, 2);
    report = co_await srv.shutdown(std::chrono::seconds(5));
  };
  auto driver = [&]() -> task<void> {
    // Two timers at once before the table fills (the server's pause and this loop's
    // polling): the Asio backend creates its pooled timers now.
    co_await when_all(sleep_for(io, std::chrono::milliseconds(1)),
                      sleep_for(io, std::chrono::milliseconds(1)));
    full_fd_table full;
    table = &full;
    // The server starts accepting once the table is full: io_uring reads the limit
    // when an accept is armed, and a multishot accept stays armed (docs/runtime.md).
    co_await when_all(srv.serve(echo_once), peer());
  };
  sync_wait(io, driver());

  CHECK(echoed == "hi");
  CHECK(report.aborted == 0);
  REQUIRE(lines.size() >= 3);
  const char* pauses[] = {"100 ms", "200 ms", "400 ms", "500 ms"};
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    CHECK(lines[i].find("open files") != std::string::npos);
    CHECK(lines[i].find(pauses[std::min<std::size_t>(i, 3)]) != std::string::npos);
  }
}
#endif
