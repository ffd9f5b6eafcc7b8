// A tiny "--name value" command-line reader shared by the examples.
#pragma once

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <sluice/io_context.hpp>
#include <sluice/net/activation.hpp>
#include <sluice/net/handover.hpp>
#include <sluice/sharded_server.hpp>
#include <sluice/sync_wait.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace examples {

class options {
public:
  // `defaults`, when given, holds each option's default (in the order of `known`), for
  // --help.
  options(int argc, char** argv, std::vector<std::string_view> known,
          std::vector<std::string> defaults = {})
      : known_(std::move(known)), defaults_(std::move(defaults)) {
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      if (a == "--help" || a == "-h") usage_and_exit(argv[0], 0);
      if (a.substr(0, 2) != "--" || i + 1 >= argc) fail(argv[0], "expected --name value", a);
      std::string_view name = a.substr(2);
      bool ok = false;
      for (auto k : known_)
        ok = ok || k == name;
      if (!ok) fail(argv[0], "unknown option", a);
      values_.emplace_back(std::string(name), std::string(argv[++i]));
    }
  }

  std::string get(std::string_view name, std::string def) const {
    for (auto& [k, v] : values_)
      if (k == name) return v;
    return def;
  }

  bool has(std::string_view name) const {
    for (auto& kv : values_)
      if (kv.first == name) return true;
    return false;
  }

  long number(std::string_view name, long def, long lo, long hi) const {
    std::string text = get(name, std::to_string(def));
    long v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) {
      std::fprintf(stderr, "--%.*s: \"%s\" is not a number in [%ld, %ld]\n", int(name.size()),
                   name.data(), text.c_str(), lo, hi);
      std::exit(2);
    }
    return v;
  }

private:
  void usage_and_exit(const char* prog, int code) const {
    std::FILE* to = code ? stderr : stdout;
    std::fprintf(to, "usage: %s", prog);
    for (auto k : known_)
      std::fprintf(to, " [--%.*s V]", int(k.size()), k.data());
    std::fprintf(to, "\n");
    for (std::size_t i = 0; i < defaults_.size() && i < known_.size(); ++i)
      std::fprintf(to, "  --%-18.*s default %s\n", int(known_[i].size()), known_[i].data(),
                   defaults_[i].c_str());
    std::exit(code);
  }
  [[noreturn]] void fail(const char* prog, const char* why, std::string_view arg) const {
    std::fprintf(stderr, "%s: %s: %.*s\n", prog, why, int(arg.size()), arg.data());
    usage_and_exit(prog, 2);
    std::exit(2);
  }

  std::vector<std::string_view> known_;
  std::vector<std::string> defaults_;

  std::vector<std::pair<std::string, std::string>> values_;
};

// An io_context on the backend SLUICE_BACKEND names (or the best one), or nullptr after
// printing why it cannot start.
inline std::unique_ptr<sluice::io_context>
start_io_context(const char* program, const sluice::io_context::options& o = {}) {
  try {
    return std::make_unique<sluice::io_context>(o);
  } catch (const std::system_error& e) {
    fmt::print(stderr, "{}: cannot start an io_context: {}\n", program, e.what());
    return nullptr;
  }
}

// --handover PATH: the hand-over point at PATH (sluice/net/handover.hpp), opened on a
// loop of its own before the server's: the listeners of the server running there, or
// the point bound here when nobody runs there. SIGHUP restarts this program, with the
// same arguments, through it. Without the option, nothing; on an error the program
// exits 1 after saying why. --handover-step-ms N bounds each step of a hand-over (10 s
// by default): a successor that stalls longer is given up on.
inline std::optional<sluice::handover::session>
open_handover(const char* program, const options& opt, int argc, char** argv) {
  if (!opt.has("handover")) return std::nullopt;
  auto io = start_io_context(program);
  if (!io) std::exit(1);
  sluice::handover::options ho;
  ho.step_timeout = std::chrono::milliseconds(
      opt.number("handover-step-ms", ho.step_timeout.count(), 1, 3'600'000));
  auto hs =
      sluice::sync_wait(*io, sluice::handover::session::open(*io, opt.get("handover", ""), ho));
  if (!hs) {
    fmt::print(stderr, "{}: {}\n", program, hs.error().message());
    std::exit(1);
  }
  std::vector<std::string> again(argv, argv + argc);
  again[0] = sluice::handover::own_executable(argv[0]);
  hs->set_restart_command(std::move(again));
  if (hs->took_over())
    fmt::print(stderr, "{}: pid {} took {} listening sockets over from pid {} through {}\n",
               program, sluice::handover::process_id(), hs->listeners(), hs->predecessor(),
               hs->path());
  return std::move(*hs);
}

// A process that took the listeners over and cannot serve them: the old server keeps
// serving, told why; returns the exit status.
inline int abandon_handover(const char* program, sluice::handover::session& hs,
                            const std::string& why) {
  fmt::print(stderr, "{}: {}\n", program, why);
  if (auto io = start_io_context(program)) sluice::sync_wait(*io, hs.abandon(*io, why));
  return 1;
}

// Serves `h` on `threads` loops sharing one port (sluice::runtime and
// sluice::sharded_server), printing "listening on HOST:PORT" first, until SIGINT or
// SIGTERM (or a hand-over through `hs`); returns the exit status.
template <class Handler>
int serve_on_threads(const char* program, unsigned threads, const sluice::endpoint& ep,
                     sluice::port_sharing sharing, Handler h, std::chrono::milliseconds drain,
                     std::optional<sluice::proxy_protocol_options> proxy,
                     std::optional<sluice::handover::session>& hs) {
  std::unique_ptr<sluice::runtime> rt;
  try {
    rt = std::make_unique<sluice::runtime>(threads);
  } catch (const std::system_error& e) {
    fmt::print(stderr, "{}: cannot start {} loops: {}\n", program, threads, e.what());
    return 1;
  }
  // The sockets taken over from the server this one replaces, or those the service
  // manager passed (systemd socket activation): one is handed off from loop 0, one per
  // loop is each loop's own.
  std::vector<sluice::detail::native_handle> handles;
  if (hs && hs->took_over()) {
    handles = hs->take_listeners();
  } else {
    auto passed = sluice::activation::listen_fds();
    if (!passed) {
      fmt::print(stderr, "{}: {}\n", program, passed.error().message());
      return 1;
    }
    for (const auto& p : *passed)
      handles.push_back(p.handle);
  }
  const sluice::sharded_server::options o{.sharing = sharing, .proxy_protocol = proxy};
  auto srv = handles.empty() ? sluice::sharded_server::bind(*rt, ep, o)
                             : sluice::sharded_server::adopt(*rt, std::move(handles), o);
  if (!srv) {
    if (hs && hs->took_over()) return abandon_handover(program, *hs, srv.error().message());
    fmt::print(stderr, "{}: {}\n", program, srv.error().message());
    return 1;
  }
  fmt::print("listening on {}\n", (*srv)->local_endpoint());
  std::fflush(stdout);
  fmt::print(stderr, "{}: backend {}, {} loops\n", program, rt->loop(0).backend_name(), threads);
  std::fflush(stderr); // not line-buffered everywhere (mingw, redirected)
  if (hs) return sluice::serve_until_signalled(*rt, **srv, std::move(h), drain, program, *hs);
  return sluice::serve_until_signalled(*rt, **srv, std::move(h), drain, program);
}

// The listening socket of a one-loop server: the one taken over through `hs`, else the
// service manager's (systemd socket activation), else one bound to `ep`. Exits 1 after
// saying why when there is none.
inline sluice::tcp::acceptor listener_for(const char* program, sluice::io_context& io,
                                          const sluice::endpoint& ep,
                                          std::optional<sluice::handover::session>& hs) {
  if (hs && hs->took_over()) {
    auto taken = hs->take_listeners();
    if (taken.size() != 1) {
      for (auto h : taken)
        sluice::local::unique_fd closing(h);
      std::exit(abandon_handover(
          program, *hs,
          fmt::format("{} listening sockets taken over (one per loop of the old server); this "
                      "one serves one loop: start it with --threads {}",
                      taken.size(), taken.size())));
    }
    auto acc = sluice::tcp::acceptor::adopt(io, taken[0]);
    if (!acc) std::exit(abandon_handover(program, *hs, acc.error().message()));
    return std::move(*acc);
  }
  auto acc = sluice::activation::listen_or_bind(io, ep);
  if (!acc) {
    fmt::print(stderr, "{}: {}\n", program, acc.error().message());
    std::exit(1);
  }
  return std::move(*acc);
}

// --share: "handoff" (loop 0 accepts and hands connections out) or "reuseport".
inline sluice::port_sharing sharing_option(const options& opt) {
  const std::string v = opt.get("share", "handoff");
  if (v == "handoff") return sluice::port_sharing::hand_off;
  if (v == "reuseport") return sluice::port_sharing::reuse_port;
  std::fprintf(stderr, "--share: \"%s\" is neither handoff nor reuseport\n", v.c_str());
  std::exit(2);
}

} // namespace examples
