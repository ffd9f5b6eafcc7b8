// server: an acceptor and the connections it accepted, with a graceful drain.
// Structured: every connection runs inside the server and none outlives serve().
//
//   server srv(io, std::move(acceptor));
//   spawn(io, srv.serve([](tcp::stream& s, stop_token stop) -> task<void> { ... }));
//   ...
//   auto report = co_await srv.shutdown(10s); // drained / aborted counts
//
// Each handler runs under its connection's stop token (combined with the token serve()
// runs under), so every plain operation in it — a recv waiting for the next request,
// say — is cancelled when the drain starts; `stop` is that same token, for handlers
// that want to finish something first (shield() the work that must complete).
//
// shutdown() stops accepting at once, requests stop on every connection's token,
// waits until the deadline, then aborts (RST) whatever is left. A connection accepted
// while the drain begins is drained like the others.
//
// Running out of descriptors (EMFILE/ENFILE) pauses accepting for 100 ms, doubling up
// to 500 ms while it lasts, with one log line per pause; the kernel's backlog holds
// new connections meanwhile.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <sluice/net/tcp.hpp>
#include <sluice/scope.hpp>
#include <sluice/signal.hpp>

namespace sluice {

struct drain_report {
  std::size_t drained = 0; // connections that finished by themselves during the drain
  std::size_t aborted = 0; // connections reset at the deadline or by abort()
};

class server {
public:
  // The handler owns the protocol; the server closes the stream after it returns.
  using handler = std::function<task<void>(tcp::stream&, stop_token)>;
  // Where the server's messages go (accept errors, failed handlers); standard error
  // by default.
  using log_sink = std::function<void(std::string_view)>;

  server(io_context& io, tcp::acceptor acceptor);
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  const endpoint& local_endpoint() const noexcept { return local_; }
  std::size_t connections() const noexcept { return conns_.size(); }
  bool draining() const noexcept { return draining_; }

  // Accepts and serves until shutdown()/abort(); completes when every connection ended.
  task<void> serve(handler h);

  // Graceful drain, bounded by `deadline`.
  task<drain_report> shutdown(std::chrono::milliseconds deadline);

  // Immediate: stop accepting and reset every connection now.
  std::size_t abort() noexcept;

  void set_log(log_sink sink) { log_ = std::move(sink); }

private:
  struct connection {
    explicit connection(tcp::stream s) noexcept : stream(std::move(s)) {}
    tcp::stream stream;
    stop_source stop;
  };
  task<void> run(std::list<connection>::iterator it, handler& h);
  void log(std::string_view message) const;

  io_context& io_;
  tcp::acceptor acceptor_;
  endpoint local_;
  std::list<connection> conns_; // before scope_: the children use them until destroyed
  async_scope scope_;
  stop_source stop_accepting_;
  log_sink log_;
  bool draining_ = false;
  std::size_t aborted_ = 0;
};

// Serves until a signal of `sigs` arrives, then drains (bounded by `drain_deadline`); a
// second signal during the drain aborts every connection at once. Returns 0 after a
// drain that finished by itself, 1 after an abort by a second signal. Progress is
// reported on standard error, prefixed with `name`.
task<int> serve_until_signalled(server& srv, server::handler h, signal_set& sigs,
                                std::chrono::milliseconds drain_deadline, std::string_view name);

} // namespace sluice

// fmt: "drained 12, aborted 0".
template <> struct fmt::formatter<sluice::drain_report> : fmt::formatter<std::string_view> {
  template <class Ctx> auto format(const sluice::drain_report& r, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format(
        fmt::format("drained {}, aborted {}", r.drained, r.aborted), ctx);
  }
};
