// sharded_server: a server per loop on one port, hand-off or SO_REUSEPORT, one drain
// (include/sluice/sharded_server.hpp).
#include <sluice/sharded_server.hpp>

#include "../backend/socket_ops.hpp"
#include "drain_control.hpp"

#include <csignal>
#include <fmt/format.h>
#include <sluice/signal.hpp>
#include <sluice/when_all.hpp>

namespace sluice {

// A connection on its way from loop 0 to the loop that will serve it. Owns the socket
// until that loop adopts it; closes it if that loop goes before.
struct sharded_server::hand_off_node : detail::remote_node {
  sharded_server* owner = nullptr;
  std::size_t loop = 0;
  detail::native_handle socket = detail::invalid_handle;

  hand_off_node() noexcept {
    run = &arrive;
    drop = &lost;
  }
  static void arrive(detail::ready_node& n) noexcept {
    auto* h = static_cast<hand_off_node*>(&n);
    sharded_server& srv = *h->owner;
    auto s = tcp::stream::adopt(srv.rt_.loop(h->loop), h->socket);
    if (s) {
      srv.shards_[h->loop]->adopt(std::move(*s));
    } else { // it went away on the way (reset): nothing to serve
      detail::sys::close(h->socket);
    }
    srv.arriving_[h->loop].fetch_sub(1, std::memory_order_relaxed);
    delete h;
  }
  static void lost(detail::remote_node& n) noexcept {
    auto* h = static_cast<hand_off_node*>(&n);
    detail::sys::close(h->socket);
    delete h;
  }
};

std::unique_ptr<sharded_server>
sharded_server::assemble(runtime& rt, std::vector<tcp::acceptor> acceptors, const options& o) {
  const bool each_own = acceptors.size() > 1;
  std::unique_ptr<sharded_server> s(
      new sharded_server(rt, each_own ? port_sharing::reuse_port : port_sharing::hand_off));
  s->arriving_ = std::make_unique<std::atomic<std::size_t>[]>(rt.size());
  s->local_ = acceptors[0].local_endpoint();
  for (std::size_t i = 0; i < rt.size(); ++i) {
    if (i < acceptors.size())
      s->shards_.push_back(std::make_unique<server>(rt.loop(i), std::move(acceptors[i])));
    else
      s->shards_.push_back(std::make_unique<server>(rt.loop(i)));
  }
  if (!each_own && rt.size() > 1)
    s->shards_[0]->set_distributor([p = s.get()](tcp::stream& st) { return p->hand_off(st); });
  if (o.proxy_protocol)
    for (auto& shard : s->shards_)
      shard->set_proxy_protocol(*o.proxy_protocol);
  return s;
}

result<std::unique_ptr<sharded_server>> sharded_server::bind(runtime& rt, const endpoint& ep,
                                                             options o) {
  std::vector<tcp::acceptor> acceptors;
  if (o.sharing == port_sharing::reuse_port) {
    endpoint at = ep;
    for (std::size_t i = 0; i < rt.size(); ++i) {
      auto acc = tcp::acceptor::bind(rt.loop(i), at, {.backlog = o.backlog, .reuse_port = true});
      if (!acc) return std::move(acc).error();
      if (i == 0) at = acc->local_endpoint(); // port 0: the others take its port
      acceptors.push_back(std::move(*acc));
    }
  } else {
    auto acc = tcp::acceptor::bind(rt.loop(0), ep, {.backlog = o.backlog, .reuse_port = false});
    if (!acc) return std::move(acc).error();
    acceptors.push_back(std::move(*acc));
  }
  auto s = assemble(rt, std::move(acceptors), o);
  s->sharing_ = o.sharing; // reuse_port on a one-loop runtime is still reuse_port
  return s;
}

result<std::unique_ptr<sharded_server>>
sharded_server::adopt(runtime& rt, std::vector<detail::native_handle> listeners, options o) {
  auto close_from = [&](std::size_t i) {
    for (; i < listeners.size(); ++i)
      detail::sys::close(listeners[i]);
  };
  if (listeners.size() != 1 && listeners.size() != rt.size()) {
    const std::size_t n = listeners.size();
    close_from(0);
    return error(std::make_error_code(std::errc::invalid_argument),
                 fmt::format("sharded_server adopt: {} listening sockets for {} loops (1: loop 0 "
                             "accepts and hands off; {}: one per loop)",
                             n, rt.size(), rt.size()));
  }
  std::vector<tcp::acceptor> acceptors;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    auto acc = tcp::acceptor::adopt(rt.loop(i), listeners[i]);
    if (!acc) {
      close_from(i);
      return error(acc.error().code(), "sharded_server " + acc.error().context());
    }
    acceptors.push_back(std::move(*acc));
    if (i > 0 && acceptors[i].local_endpoint() != acceptors[0].local_endpoint()) {
      const std::string what =
          fmt::format("sharded_server adopt: socket {} listens on {}, socket 0 on {} (one per "
                      "loop must share one port)",
                      i, acceptors[i].local_endpoint(), acceptors[0].local_endpoint());
      close_from(i + 1);
      return error(std::make_error_code(std::errc::invalid_argument), what);
    }
  }
  return assemble(rt, std::move(acceptors), o);
}

result<std::unique_ptr<sharded_server>>
sharded_server::adopt(runtime& rt, std::vector<detail::native_handle> listeners) {
  return adopt(rt, std::move(listeners), options());
}

result<std::unique_ptr<sharded_server>> sharded_server::bind(runtime& rt, const endpoint& ep) {
  return bind(rt, ep, options());
}

sharded_server::~sharded_server() = default;

bool sharded_server::hand_off(tcp::stream& s) {
  // The least busy loop: its connections and those on their way to it.
  std::size_t best = 0, best_load = static_cast<std::size_t>(-1);
  for (std::size_t i = 0; i < shards_.size(); ++i) {
    const std::size_t load =
        shards_[i]->connections() + arriving_[i].load(std::memory_order_relaxed);
    if (load < best_load) {
      best = i;
      best_load = load;
    }
  }
  if (best == 0) return false; // served here
  auto* node = new hand_off_node();
  node->owner = this;
  node->loop = best;
  node->socket = s.release();
  arriving_[best].fetch_add(1, std::memory_order_relaxed);
  rt_.loop(best).post_remote(*node);
  return true;
}

task<void> sharded_server::serve(std::size_t i, server::handler h) {
  return shards_[i]->serve(std::move(h));
}

task<void> sharded_server::serve(std::size_t i, server::parking_handler h) {
  return shards_[i]->serve(std::move(h));
}

task<drain_report> sharded_server::shutdown_shard(server& s, std::chrono::milliseconds deadline) {
  co_return co_await s.shutdown(deadline);
}

task<void> sharded_server::abort_shard(server& s) {
  s.abort();
  co_return;
}

task<drain_report> sharded_server::shutdown(std::chrono::milliseconds deadline) {
  // Each loop drains its own connections, all at once; loop 0 first stops accepting.
  std::vector<join_handle<drain_report>> drains;
  drains.reserve(shards_.size());
  for (std::size_t i = 0; i < shards_.size(); ++i)
    drains.push_back(spawn_on(rt_.loop(i), shutdown_shard(*shards_[i], deadline)));
  drain_report total;
  for (auto& d : drains) {
    const drain_report r = co_await d;
    total.drained += r.drained;
    total.aborted += r.aborted;
  }
  co_return total;
}

task<void> sharded_server::abort() {
  std::vector<join_handle<void>> aborts;
  aborts.reserve(shards_.size());
  for (std::size_t i = 0; i < shards_.size(); ++i)
    aborts.push_back(spawn_on(rt_.loop(i), abort_shard(*shards_[i])));
  for (auto& a : aborts)
    co_await a;
}

namespace {

std::size_t open_connections(const sharded_server& srv, std::size_t loops) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < loops; ++i)
    n += srv.connections(i);
  return n;
}

// One loop's task: loop 0 also watches the signals and drives the drain.
// Every loop's listening socket (loop 0's alone with hand-off), for a hand-over.
std::vector<detail::native_handle> listeners_of(sharded_server& srv, std::size_t loops) {
  std::vector<detail::native_handle> out;
  for (std::size_t i = 0; i < loops; ++i)
    if (srv.shard(i).listener() != detail::invalid_handle) out.push_back(srv.shard(i).listener());
  return out;
}

template <class Handler>
task<void> loop_part(io_context& loop, std::size_t i, std::size_t loops, sharded_server& srv,
                     Handler h, std::chrono::milliseconds deadline, std::string name, int& code,
                     handover::session* hs) {
  if (i != 0) {
    co_await srv.serve(i, std::move(h));
    co_return;
  }
  signal_set sigs(loop, {SIGINT, SIGTERM});
  detail::drain_controls c{[&srv](std::chrono::milliseconds d) { return srv.shutdown(d); },
                           [&srv] { return srv.abort(); },
                           [&srv, loops] { return open_connections(srv, loops); },
                           [&srv, loops] { return listeners_of(srv, loops); }};
  auto [served, rc] =
      co_await when_all(srv.serve(0, std::move(h)),
                        detail::drain_on_signals(loop, sigs, std::move(c), deadline, name, hs));
  (void)served;
  code = rc;
}

template <class Handler>
int serve_all(runtime& rt, sharded_server& srv, Handler h, std::chrono::milliseconds deadline,
              std::string name, handover::session* hs) {
  int code = 1;
  rt.run([&](io_context& loop, std::size_t i) {
    return loop_part(loop, i, rt.size(), srv, h, deadline, name, code, hs);
  });
  std::string per_loop;
  for (std::size_t i = 0; i < rt.size(); ++i)
    per_loop += fmt::format("{}{}", i == 0 ? "" : " ", srv.served(i));
  fmt::print(stderr, "{}: connections served per loop: {}\n", name, per_loop);
  return code;
}

} // namespace

int serve_until_signalled(runtime& rt, sharded_server& srv, server::handler h,
                          std::chrono::milliseconds drain_deadline, std::string_view name) {
  return serve_all(rt, srv, std::move(h), drain_deadline, std::string(name), nullptr);
}

int serve_until_signalled(runtime& rt, sharded_server& srv, server::parking_handler h,
                          std::chrono::milliseconds drain_deadline, std::string_view name) {
  return serve_all(rt, srv, std::move(h), drain_deadline, std::string(name), nullptr);
}

int serve_until_signalled(runtime& rt, sharded_server& srv, server::handler h,
                          std::chrono::milliseconds drain_deadline, std::string_view name,
                          handover::session& hs) {
  return serve_all(rt, srv, std::move(h), drain_deadline, std::string(name), &hs);
}

int serve_until_signalled(runtime& rt, sharded_server& srv, server::parking_handler h,
                          std::chrono::milliseconds drain_deadline, std::string_view name,
                          handover::session& hs) {
  return serve_all(rt, srv, std::move(h), drain_deadline, std::string(name), &hs);
}

} // namespace sluice
