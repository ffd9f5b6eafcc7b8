// sluice::server: accepting, one task per connection, parked idle connections, a
// bounded graceful drain, and serve_until_signalled (include/sluice/server.hpp).
// Protocol-agnostic: the echo example and the HTTP driver use it alike.
#include <sluice/server.hpp>

#include "drain_control.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/net/handover.hpp>
#include <sluice/timer.hpp>
#include <sluice/when_all.hpp>

namespace sluice {

server::connection::connection(server& s, tcp::stream st) noexcept
    : owner(&s), stream(std::move(st)) {
  run = &server::wake;
}

server::connection::~connection() { unlink(); } // a wake-up still posted goes with it

server::connection_list::~connection_list() {
  while (head != nullptr)
    delete std::exchange(head, head->next);
}

server::server(io_context& io, tcp::acceptor acceptor)
    : io_(io), acceptor_(std::move(acceptor)), local_(acceptor_.local_endpoint()), scope_(io),
      stopped_(io) {}

server::server(io_context& io) : io_(io), scope_(io), stopped_(io) {}

void server::log(std::string_view message) const {
  if (log_)
    log_(message);
  else
    fmt::print(stderr, "sluice::server: {}\n", message);
}

server::connection& server::add(tcp::stream s) {
  auto* c = new connection(*this, std::move(s));
  c->next = conns_.head;
  if (conns_.head != nullptr) conns_.head->prev = c;
  conns_.head = c;
  conns_.count.fetch_add(1, std::memory_order_relaxed);
  served_.fetch_add(1, std::memory_order_relaxed);
  return *c;
}

void server::remove(connection& c) noexcept {
  if (c.parked) unpark(c);
  if (c.prev != nullptr)
    c.prev->next = c.next;
  else
    conns_.head = c.next;
  if (c.next != nullptr) c.next->prev = c.prev;
  conns_.count.fetch_sub(1, std::memory_order_relaxed);
  delete &c; // closes the stream
}

namespace {
// The handler runs under its connection's token alone (bound to it, not combined: the
// children of the scope run under no other token), with no frame of its own for that.
template <class T> task<T> under(task<T> t, stop_token token) {
  t.handle().promise().bind_stop_token(token);
  return t;
}
} // namespace

task<bool> server::read_proxy_header(connection& c) {
  namespace proxy = proto::proxy;
  c.proxy_read = true;
  const auto balancer = c.stream.remote_endpoint();
  std::vector<std::byte> got;
  auto reading = [&]() -> task<result<proxy::header>> {
    std::array<std::byte, 512> chunk;
    for (;;) {
      auto r = proxy::parse(got, proxy_->limits);
      if (auto* h = std::get_if<proxy::header>(&r)) {
        c.stream.put_back(std::span(got).subspan(h->size)); // the handler's bytes
        co_return std::move(*h);
      }
      if (auto* e = std::get_if<proxy::parse_error>(&r))
        co_return error(errc::protocol_error, std::move(e->message));
      auto n = co_await c.stream.recv(chunk);
      if (!n) co_return std::move(n).error();
      if (*n == 0)
        co_return error(errc::end_of_stream,
                        fmt::format("the connection ended after {} bytes, before a whole "
                                    "PROXY header",
                                    got.size()));
      got.insert(got.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  };
  auto r = co_await under(with_timeout(reading(), proxy_->timeout), c.stop.get_token());
  if (!r) {
    if (r.error() == errc::operation_aborted) co_return false; // the drain: nothing to say
    // Connected and gone without a byte: a port probe (a balancer's plain TCP check
    // closes so, often with a reset), not worth a line per probe.
    if (got.empty() && (r.error() == errc::end_of_stream || r.error() == errc::connection_reset))
      co_return false;
    const std::string why =
        r.error() == errc::timed_out
            ? fmt::format("no whole PROXY header within {} ms", proxy_->timeout.count())
            : r.error().message();
    log(fmt::format("PROXY protocol from {}: {}; connection closed",
                    balancer ? balancer->to_string() : std::string("?"), why));
    co_return false;
  }
  const auto& a = r->source;
  if (!r->local && a.family == proxy::address::kind::v4)
    c.stream.set_remote_endpoint(endpoint::v4({a.ip[0], a.ip[1], a.ip[2], a.ip[3]}, a.port));
  else if (!r->local && a.family == proxy::address::kind::v6)
    c.stream.set_remote_endpoint(endpoint::v6(a.ip, a.port));
  co_return true;
}

task<void> server::run(connection& c, handler& h) {
  if (proxy_ && !c.proxy_read) {
    const bool admitted = co_await read_proxy_header(c);
    if (!admitted) {
      remove(c);
      co_return;
    }
  }
  try {
    const stop_token token = c.stop.get_token();
    co_await under(h(c.stream, token), token);
  } catch (const std::exception& e) {
    log(fmt::format("a connection handler failed: {}", e.what()));
  }
  remove(c);
}

task<void> server::run_parking(connection& c) {
  if (proxy_ && !c.proxy_read) {
    const bool admitted = co_await read_proxy_header(c);
    if (!admitted) {
      remove(c);
      co_return;
    }
  }
  after next;
  try {
    const stop_token token = c.stop.get_token();
    next = co_await under(parking_(c.stream, token), token);
  } catch (const std::exception& e) {
    log(fmt::format("a connection handler failed: {}", e.what()));
  }
  if (next.parks && !c.stop.stop_requested() && !draining_ && c.stream.is_open())
    park(c, next.idle_timeout);
  else
    remove(c);
}

void server::park(connection& c, std::chrono::milliseconds idle_timeout) noexcept {
  if (!c.stream.watch_receive(c)) { // the receive side is shut: nothing can wake it
    remove(c);
    return;
  }
  c.parked = true;
  ++parked_;
  c.idle_deadline = detail::steady_now_ns() +
                    std::chrono::duration_cast<std::chrono::nanoseconds>(idle_timeout).count();
  // Sorted by deadline, searched from the tail: with one idle timeout for every
  // connection (the usual case) a newcomer is always last, O(1).
  connection* after_this = idle_tail_;
  while (after_this != nullptr && after_this->idle_deadline > c.idle_deadline)
    after_this = after_this->idle_prev;
  c.idle_prev = after_this;
  c.idle_next = after_this != nullptr ? after_this->idle_next : idle_head_;
  (c.idle_next != nullptr ? c.idle_next->idle_prev : idle_tail_) = &c;
  (after_this != nullptr ? after_this->idle_next : idle_head_) = &c;
  if (!reaping_) {
    reaping_ = true;
    scope_.spawn(reap_idle());
  } else if (c.idle_deadline < reap_at_ && reap_interrupt_ != nullptr) {
    reap_interrupt_->request_stop(); // the reaper sleeps past this deadline
  }
}

void server::unpark(connection& c) noexcept {
  c.stream.unwatch_receive();
  c.unlink(); // a wake-up already posted is withdrawn
  (c.idle_prev != nullptr ? c.idle_prev->idle_next : idle_head_) = c.idle_next;
  (c.idle_next != nullptr ? c.idle_next->idle_prev : idle_tail_) = c.idle_prev;
  c.idle_prev = c.idle_next = nullptr;
  c.parked = false;
  --parked_;
}

// Runs from inside the receive's completion (or from the ready list): it only unparks
// and posts the handler's run (tcp::stream::watch_receive).
void server::wake(detail::ready_node& n) noexcept {
  auto& c = static_cast<connection&>(n);
  server& s = *c.owner;
  s.unpark(c);
  s.scope_.spawn(s.run_parking(c));
}

// Closes parked connections whose idle deadline passed; runs while any is parked.
task<void> server::reap_idle() {
  while (idle_head_ != nullptr) {
    const std::int64_t now = detail::steady_now_ns();
    while (idle_head_ != nullptr && idle_head_->idle_deadline <= now)
      remove(*idle_head_);
    if (idle_head_ == nullptr) break;
    reap_at_ = idle_head_->idle_deadline;
    stop_source interrupt;
    reap_interrupt_ = &interrupt;
    (void)co_await with_stop_token(
        as_task(sleep_for(io_, std::chrono::nanoseconds(reap_at_ - now))), interrupt.get_token());
    reap_interrupt_ = nullptr;
  }
  reaping_ = false;
}

void server::start(connection& c) {
  if (draining_) c.stop.request_stop(); // accepted as the drain began: drained too
  if (parking_)
    scope_.spawn(run_parking(c));
  else
    scope_.spawn(run(c, handler_));
}

void server::adopt(tcp::stream s) {
  if (!serving_) {
    if (draining_) return;          // over, or drained before it began: s closes as it goes
    early_.push_back(std::move(s)); // serve() has not begun: it starts them
    return;
  }
  start(add(std::move(s))); // during a drain: accepted before it, so drained like the others
}

task<void> server::accept_loop() {
  using std::chrono::milliseconds;
  serving_ = true;
  milliseconds pause{0};
  for (auto& s : std::exchange(early_, {}))
    start(add(std::move(s)));
  const bool accepting = acceptor_.is_open();
  // During a drain the acceptor has stopped accepting: the loop still takes the
  // connections the OS handed over before that (they are drained like the others, not
  // reset), until accept() says there are no more.
  while (acceptor_.is_open()) {
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
    if (!draining_ && distributor_ && distributor_(*s)) continue; // another loop serves it
    start(add(std::move(*s)));
  }
  if (accepting) {
    if (draining_) acceptor_.close(); // still listening wherever it was handed over
  } else if (!draining_) {
    // No acceptor (connections are handed in): serve until the drain, or until
    // serve()'s own stop token stops it (as it stops accepting).
    (void)co_await stopped_.wait(draining_);
  }
  (void)co_await scope_.join(); // no connection outlives serve()
  serving_ = false;
}

task<void> server::serve(handler h) {
  handler_ = std::move(h);
  return accept_loop();
}

task<void> server::serve(parking_handler h) {
  parking_ = std::move(h);
  return accept_loop();
}

task<drain_report> server::shutdown(std::chrono::milliseconds deadline) {
  draining_ = true;
  stop_accepting_.request_stop();
  // No new connection from now on; the accept loop serves what the OS already handed
  // over, then closes the socket.
  if (serving_)
    acceptor_.stop_accepting();
  else
    acceptor_.close();
  stopped_.notify();
  const std::size_t at_start = conns_.count.load(std::memory_order_relaxed);
  const std::size_t aborted_before = aborted_;
  for (connection* c = conns_.head; c != nullptr;) {
    connection* next = c->next;
    c->stop.request_stop();
    if (c->parked) remove(*c); // idle: closed now
    c = next;
  }
  if (reap_interrupt_ != nullptr) reap_interrupt_->request_stop();
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
  stopped_.notify();
  std::size_t n = 0;
  for (connection* c = conns_.head; c != nullptr;) {
    connection* next = c->next;
    if (c->stream.is_open()) {
      c->stop.request_stop();
      c->stream.abort();
      ++n;
    }
    if (c->parked) remove(*c);
    c = next;
  }
  if (reap_interrupt_ != nullptr) reap_interrupt_->request_stop();
  aborted_ += n;
  return n;
}

namespace {

task<void> abort_on_second_signal(signal_set& sigs, detail::drain_controls& c, bool& forced,
                                  std::string name) {
  auto sig = co_await sigs.wait();
  if (!sig) co_return; // the drain finished first and cancelled this wait
  fmt::print(stderr, "{}: second signal {}, aborting\n", name, *sig);
  forced = true;
  co_await c.abort();
}

task<drain_report> drain_then_release(detail::drain_controls& c, std::chrono::milliseconds deadline,
                                      stop_source& watcher) {
  drain_report r = co_await c.drain(deadline);
  watcher.request_stop();
  co_return r;
}

task<void> abort_now(server& srv) {
  srv.abort();
  co_return;
}

template <class Handler>
task<int> serve_and_control(server& srv, Handler h, signal_set& sigs,
                            std::chrono::milliseconds drain_deadline, std::string name,
                            handover::session* hs) {
  detail::drain_controls c{[&srv](std::chrono::milliseconds d) { return srv.shutdown(d); },
                           [&srv] { return abort_now(srv); }, [&srv] { return srv.connections(); },
                           [&srv] { return std::vector<detail::native_handle>{srv.listener()}; }};
  auto [served, code] = co_await when_all(
      srv.serve(std::move(h)),
      detail::drain_on_signals(srv.context(), sigs, std::move(c), drain_deadline, name, hs));
  (void)served;
  co_return code;
}

// SIGHUP starts the session's restart command, then watches the new process until it
// ends (reported: it failed to take over) or this watch is stopped (the drain began:
// it took over). Signals that come meanwhile wait their turn.
task<void> restart_on_sighup(io_context& io, handover::session& hs, std::string name) {
#ifdef _WIN32
  (void)io;
  (void)hs;
  (void)name;
  co_return;
#else
  if (hs.restart_command().empty()) co_return;
  signal_set hup(io, {SIGHUP});
  for (;;) {
    auto sig = co_await hup.wait();
    if (!sig) co_return; // stopped
    auto pid = handover::spawn_process(hs.restart_command());
    if (!pid) {
      fmt::print(stderr, "{}: SIGHUP: {}; still serving\n", name, pid.error().message());
      continue;
    }
    fmt::print(stderr, "{}: SIGHUP: started pid {} to take over through {}\n", name, *pid,
               hs.path());
    for (;;) {
      auto slept = co_await sleep_for(io, std::chrono::milliseconds(100));
      if (!slept) co_return; // stopped: the drain began
      if (auto how = handover::reap_process(*pid)) {
        fmt::print(stderr, "{}: the new process (pid {}) {} before taking over; still serving\n",
                   name, *pid, *how);
        break;
      }
    }
  }
#endif
}

struct drain_cause {
  int signal = 0;     // a signal asked for the drain
  long successor = 0; // or a successor took over
};

// What starts the drain: a signal, or a successor ready (the hand-over offered meanwhile).
task<result<drain_cause>> first_cause(io_context& io, signal_set& sigs, handover::session& hs,
                                      std::vector<detail::native_handle> listeners,
                                      std::string name, stop_source& restarts) {
  auto log = [name](std::string_view m) { fmt::print(stderr, "{}: {}\n", name, m); };
  auto won = co_await when_any(sigs.wait(), hs.offer(io, std::move(listeners), log));
  restarts.request_stop();
  if (won.index() == 0) {
    auto& sig = std::get<0>(won);
    if (!sig) co_return std::move(sig).error();
    co_return drain_cause{*sig, 0};
  }
  auto& pid = std::get<1>(won);
  if (!pid) co_return std::move(pid).error();
  co_return drain_cause{0, *pid};
}

task<result<drain_cause>> handover_or_signal(io_context& io, signal_set& sigs,
                                             handover::session& hs,
                                             std::vector<detail::native_handle> listeners,
                                             std::string name) {
  if (hs.took_over()) {
    auto confirmed = co_await hs.confirm(io);
    if (confirmed)
      fmt::print(stderr, "{}: pid {} serves; pid {} was told to drain\n", name,
                 handover::process_id(), hs.predecessor());
    else
      fmt::print(stderr, "{}: {}; serving anyway\n", name, confirmed.error().message());
  }
  stop_source restarts;
  auto [cause, watched] =
      co_await when_all(first_cause(io, sigs, hs, std::move(listeners), name, restarts),
                        with_stop_token(restart_on_sighup(io, hs, name), restarts.get_token()));
  (void)watched;
  co_return std::move(cause);
}

} // namespace

// (Named coroutines with parameters, not lambdas invoked inside a co_await: GCC 12 may
// destroy such a lambda's closure while its coroutine still reads the captures.)
task<int> detail::drain_on_signals(io_context& io, signal_set& sigs, drain_controls c,
                                   std::chrono::milliseconds deadline, std::string name,
                                   handover::session* hs) {
  if (hs == nullptr) {
    auto first = co_await sigs.wait();
    if (!first) co_return 1;
    fmt::print(stderr, "{}: signal {}, draining {} connections (deadline {} ms)\n", name, *first,
               c.connections(), deadline.count());
  } else {
    auto cause = co_await handover_or_signal(io, sigs, *hs, c.listeners(), name);
    if (!cause) {
      if (cause.error() != errc::operation_aborted)
        fmt::print(stderr, "{}: {}\n", name, cause.error().message());
      co_return 1;
    }
    if (cause->successor != 0)
      fmt::print(stderr, "{}: handed over to pid {}, draining {} connections (deadline {} ms)\n",
                 name, cause->successor, c.connections(), deadline.count());
    else
      fmt::print(stderr, "{}: signal {}, draining {} connections (deadline {} ms)\n", name,
                 cause->signal, c.connections(), deadline.count());
  }
  bool forced = false;
  stop_source watcher;
  auto [report, ignored] = co_await when_all(
      drain_then_release(c, deadline, watcher),
      with_stop_token(abort_on_second_signal(sigs, c, forced, name), watcher.get_token()));
  (void)ignored;
  fmt::print(stderr, "{}: drained {}, aborted {}\n", name, report.drained, report.aborted);
  co_return forced ? 1 : 0;
}

task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name) {
  return serve_and_control(srv, std::move(h), sigs, drain_deadline, std::string(name), nullptr);
}

task<int> serve_until_signalled(server& srv, server::parking_handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name) {
  return serve_and_control(srv, std::move(h), sigs, drain_deadline, std::string(name), nullptr);
}

task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name,
                                handover::session& hs) {
  return serve_and_control(srv, std::move(h), sigs, drain_deadline, std::string(name), &hs);
}

task<int> serve_until_signalled(server& srv, server::parking_handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name,
                                handover::session& hs) {
  return serve_and_control(srv, std::move(h), sigs, drain_deadline, std::string(name), &hs);
}

} // namespace sluice
