// Helpers shared by the socket tests.
//
// Never co_await inside a Catch2 macro: the macros expand their argument more than
// once and GCC then runs the awaited operation several times. Await into a variable.
#pragma once

#include <catch2/catch.hpp>
#include <cstring>
#include <optional>
#include <sluice/sluice.hpp>
#include <string>
#include <string_view>
#include <utility>

#ifndef _WIN32
#include <dirent.h>
#endif

namespace test {

using namespace std::chrono_literals;

inline std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

inline std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// when_all cancels the other children as soon as one fails (an error result or an
// exception). To watch every child's outcome, box it: a boxed result never fails.
template <class T> struct boxed_result { T value; };
template <class T> auto boxed(sluice::task<T> t) -> sluice::task<boxed_result<T>> {
  // (Not a co_await inside the braces: g++ 12 destroys that temporary twice.)
  T r = co_await std::move(t);
  co_return boxed_result<T>{std::move(r)};
}
template <class A>
requires requires(A& a) { a.await_resume(); }
auto boxed(A a) { return boxed(sluice::as_task(std::move(a))); }

struct pair {
  sluice::tcp::stream client;
  sluice::tcp::stream server;
};

// An acceptor on 127.0.0.1 and a free port.
inline sluice::tcp::acceptor loopback_acceptor(sluice::io_context& io) {
  auto acc = sluice::tcp::acceptor::bind(io, sluice::endpoint::loopback_v4(0));
  REQUIRE(acc);
  return std::move(*acc);
}

// A connected loopback pair: accept and connect run concurrently.
inline sluice::task<pair> connected_pair(sluice::io_context& io) {
  auto acc = sluice::tcp::acceptor::bind(io, sluice::endpoint::loopback_v4(0));
  REQUIRE(acc);
  auto [c, s] = co_await sluice::when_all(sluice::tcp::connect(io, acc->local_endpoint()),
                                          sluice::as_task(acc->accept()));
  REQUIRE(c);
  REQUIRE(s);
  co_return pair{std::move(*c), std::move(*s)};
}

// Receives until `n` bytes arrived or the stream ends/fails.
inline sluice::task<std::string> recv_exactly(sluice::tcp::stream& s, std::size_t n) {
  std::string out;
  std::array<std::byte, 4096> buf;
  while (out.size() < n) {
    auto r = co_await s.recv(std::span(buf).first(std::min(buf.size(), n - out.size())));
    if (!r || *r == 0) break;
    out += text(std::span(buf).first(*r));
  }
  co_return out;
}

// Open descriptors of this process (Linux), or -1 where that cannot be counted.
inline long open_descriptors() {
#ifdef _WIN32
  return -1;
#else
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  long n = 0;
  while (::readdir(d) != nullptr)
    ++n;
  ::closedir(d);
  return n;
#endif
}

// Lets the loop turn `n` times (operations started before reach the OS, complete...).
inline sluice::task<void> yield_turns(sluice::io_context& io, int n) {
  for (int i = 0; i < n; ++i)
    co_await sluice::yield(io);
}

// Spawns make(i) for i in [0, n) in a scope and destroys the scope after two loop
// turns: with n above the turn's budget, some operations have completed but not
// resumed when their coroutines go (the lifetime rule under test).
template <class Make> void spawn_then_destroy(sluice::io_context& io, int n, Make make) {
  std::optional<sluice::async_scope> scope(std::in_place, io);
  for (int i = 0; i < n; ++i)
    scope->spawn(make(i));
  auto destroyer = [&]() -> sluice::task<void> {
    co_await yield_turns(io, 2);
    scope.reset();
  };
  sluice::sync_wait(io, destroyer());
}

// Receives until the peer closes; returns everything.
inline sluice::task<std::string> recv_to_end(sluice::tcp::stream& s) {
  std::string out;
  std::array<std::byte, 4096> buf;
  for (;;) {
    auto r = co_await s.recv(buf);
    if (!r || *r == 0) break;
    out += text(std::span(buf).first(*r));
  }
  co_return out;
}

} // namespace test
