// sluice::server: accepting, one task per connection, a bounded graceful drain, and
// serve_until_signalled (include/sluice/server.hpp). Protocol-agnostic: the echo
// example and the HTTP driver use it alike.
#include <sluice/server.hpp>

#include <fmt/format.h>
#include <sluice/timer.hpp>
#include <sluice/when_all.hpp>

namespace sluice {

server::server(io_context& io, tcp::acceptor acceptor)
    : io_(io), acceptor_(std::move(acceptor)), local_(acceptor_.local_endpoint()), scope_(io) {}

void server::log(std::string_view message) const {
  if (log_)
    log_(message);
  else
    fmt::print(stderr, "sluice::server: {}\n", message);
}

task<void> server::run(std::list<connection>::iterator it, handler& h) {
  try {
    const stop_token token = it->stop.get_token();
    co_await with_stop_token(h(it->stream, token), token);
  } catch (const std::exception& e) {
    log(fmt::format("a connection handler failed: {}", e.what()));
  }
  it->stream.close();
  conns_.erase(it);
}

task<void> server::serve(handler h) {
  using std::chrono::milliseconds;
  milliseconds pause{0};
  while (!draining_) {
    auto s = co_await acceptor_.accept();
    if (!s) {
      if (s.error() == errc::operation_aborted || draining_) break;
      if (s.error() == errc::too_many_open_files) {
        // Back off while the descriptor table is full (the kernel's backlog holds the
        // newcomers); connections already open keep being served.
        pause =
            pause == milliseconds(0) ? milliseconds(100) : std::min(pause * 2, milliseconds(500));
        log(fmt::format("{}; pausing accepts for {} ms", s.error().message(), pause.count()));
        (void)co_await with_stop_token(as_task(sleep_for(io_, pause)), stop_accepting_.get_token());
      } else {
        log(s.error().message());
      }
      continue;
    }
    pause = milliseconds(0);
    auto& c = conns_.emplace_back(std::move(*s));
    if (draining_) c.stop.request_stop(); // accepted as the drain began: drained too
    scope_.spawn(run(std::prev(conns_.end()), h));
  }
  (void)co_await scope_.join(); // no connection outlives serve()
}

task<drain_report> server::shutdown(std::chrono::milliseconds deadline) {
  draining_ = true;
  stop_accepting_.request_stop();
  acceptor_.close(); // stops accepting at once: the pending accept is cancelled
  const std::size_t at_start = conns_.size();
  const std::size_t aborted_before = aborted_;
  for (auto& c : conns_)
    c.stop.request_stop();
  auto joined = co_await with_timeout(as_task(scope_.join()), deadline);
  if (!joined) abort();
  (void)co_await scope_.join();
  drain_report r;
  r.aborted = aborted_ - aborted_before;
  r.drained = at_start - r.aborted;
  co_return r;
}

std::size_t server::abort() noexcept {
  draining_ = true;
  stop_accepting_.request_stop();
  acceptor_.close();
  std::size_t n = 0;
  for (auto& c : conns_) {
    if (!c.stream.is_open()) continue;
    c.stop.request_stop();
    c.stream.abort();
    ++n;
  }
  aborted_ += n;
  return n;
}

namespace {

task<void> abort_on_second_signal(signal_set& sigs, server& srv, bool& forced, std::string name) {
  auto sig = co_await sigs.wait();
  if (!sig) co_return; // the drain finished first and cancelled this wait
  fmt::print(stderr, "{}: second signal {}, aborting\n", name, *sig);
  forced = true;
  srv.abort();
}

task<drain_report> drain_then_release(server& srv, std::chrono::milliseconds deadline,
                                      stop_source& watcher) {
  drain_report r = co_await srv.shutdown(deadline);
  watcher.request_stop();
  co_return r;
}

// (Named coroutines with parameters, not lambdas invoked inside a co_await: GCC 12 may
// destroy such a lambda's closure while its coroutine still reads the captures.)
task<int> control(signal_set& sigs, server& srv, std::chrono::milliseconds deadline,
                  std::string name) {
  auto first = co_await sigs.wait();
  if (!first) co_return 1;
  fmt::print(stderr, "{}: signal {}, draining {} connections (deadline {} ms)\n", name, *first,
             srv.connections(), deadline.count());
  bool forced = false;
  stop_source watcher;
  auto [report, ignored] = co_await when_all(
      drain_then_release(srv, deadline, watcher),
      with_stop_token(abort_on_second_signal(sigs, srv, forced, name), watcher.get_token()));
  (void)ignored;
  fmt::print(stderr, "{}: drained {}, aborted {}\n", name, report.drained, report.aborted);
  co_return forced ? 1 : 0;
}

} // namespace

task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name) {
  auto [served, code] = co_await when_all(srv.serve(std::move(h)),
                                          control(sigs, srv, drain_deadline, std::string(name)));
  (void)served;
  co_return code;
}

} // namespace sluice
