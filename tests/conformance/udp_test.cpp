// UDP on every backend: datagrams to and from any peer, connected sockets, truncation
// reported with sizes, empty datagrams, limits, cancellation, and datagrams received
// for a destroyed coroutine kept for the next receive; the same for recv_some_from
// (datagrams in lent pool buffers: io_uring's multishot recvmsg), with an exhausted pool.
#include "../support.hpp"

#include <sluice/net/udp.hpp>

using namespace sluice;
using namespace test;

namespace {

udp::socket bound(io_context& io, const endpoint& ep = endpoint::loopback_v4(0)) {
  auto s = udp::socket::bind(io, ep);
  REQUIRE(s);
  return std::move(*s);
}

endpoint where(const udp::socket& s) {
  auto e = s.local_endpoint();
  REQUIRE(e);
  return *e;
}

} // namespace

TEST_CASE("udp: send_to and recv_from carry datagrams and their senders, IPv4 and IPv6") {
  io_context io;
  for (const endpoint& any : {endpoint::loopback_v4(0), endpoint::loopback_v6(0)}) {
    auto a = bound(io, any);
    auto b = bound(io, any);
    auto sent = sync_wait(io, as_task(a.send_to("hello over udp", where(b))));
    REQUIRE(sent);
    CHECK(*sent == 14);
    std::array<std::byte, 64> buf;
    auto got = sync_wait(io, as_task(b.recv_from(buf)));
    REQUIRE(got);
    CHECK(text(std::span(buf).first(got->size)) == "hello over udp");
    CHECK(got->from == where(a));
    // And back to whoever sent it.
    auto back = sync_wait(io, as_task(b.send_to(std::span(buf).first(got->size), got->from)));
    REQUIRE(back);
    auto echo = sync_wait(io, as_task(a.recv_from(buf)));
    REQUIRE(echo);
    CHECK(echo->from == where(b));
  }
}

TEST_CASE("udp: a datagram too big for the buffer is an error naming its size; the next one "
          "arrives whole") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  const std::string big(100, 'B');
  auto s1 = sync_wait(io, as_task(a.send_to(big, where(b))));
  REQUIRE(s1);
  auto s2 = sync_wait(io, as_task(a.send_to("next", where(b))));
  REQUIRE(s2);
  std::array<std::byte, 10> small;
  auto cut = sync_wait(io, as_task(b.recv_from(small)));
  REQUIRE(!cut);
  CHECK(cut.error() == errc::message_too_large);
  const std::string msg = cut.error().message();
  INFO(msg);
  CHECK(msg.find("from " + where(a).to_string()) != std::string::npos);
  CHECK(msg.find("does not fit the 10-byte buffer (its first 10 bytes are in the buffer)") !=
        std::string::npos);
#ifndef _WIN32
  CHECK(msg.find("a datagram of 100 bytes") != std::string::npos);
#endif
  CHECK(text(small) == std::string(10, 'B'));
  auto next = sync_wait(io, as_task(b.recv_from(small)));
  REQUIRE(next);
  CHECK(text(std::span(small).first(next->size)) == "next");
}

TEST_CASE("udp: an empty datagram is a datagram, not an end") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  auto s = sync_wait(io, as_task(a.send_to(std::string_view(), where(b))));
  REQUIRE(s);
  CHECK(*s == 0);
  std::array<std::byte, 8> buf;
  auto got = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(got);
  CHECK(got->size == 0);
  CHECK(got->from == where(a));
}

TEST_CASE("udp: connected sockets talk to their peer alone") {
  io_context io;
  auto server = bound(io);
  auto stranger = bound(io);
  auto client = udp::socket::open(io);
  REQUIRE(client);
  auto not_yet = sync_wait(io, as_task(client->send("x")));
  REQUIRE(!not_yet);
  CHECK(not_yet.error() == errc::not_connected);
  REQUIRE(client->connect(where(server)));
  CHECK(*client->remote_endpoint() == where(server));
  auto w = sync_wait(io, as_task(client->send("to the server")));
  REQUIRE(w);
  std::array<std::byte, 64> buf;
  auto at_server = sync_wait(io, as_task(server.recv_from(buf)));
  REQUIRE(at_server);
  CHECK(text(std::span(buf).first(at_server->size)) == "to the server");
  // A stranger's datagram is dropped by the OS; the server's reply arrives.
  auto x = sync_wait(io, as_task(stranger.send_to("from a stranger", where(*client))));
  REQUIRE(x);
  auto r = sync_wait(io, as_task(server.send_to("reply", at_server->from)));
  REQUIRE(r);
  auto got = sync_wait(io, as_task(client->recv(buf)));
  REQUIRE(got);
  CHECK(text(std::span(buf).first(*got)) == "reply");
}

#ifndef _WIN32
TEST_CASE("udp: a connected socket learns that nobody listens (ICMP port unreachable)") {
  io_context io;
  endpoint closed;
  {
    auto gone = bound(io);
    closed = where(gone);
  }
  auto client = udp::socket::open(io);
  REQUIRE(client);
  REQUIRE(client->connect(closed));
  auto w = sync_wait(io, as_task(client->send("anyone?")));
  REQUIRE(w);
  std::array<std::byte, 16> buf;
  auto r = sync_wait(io, as_task(with_timeout(client->recv(buf), 5s)));
  REQUIRE(!r);
  CHECK(r.error() == errc::connection_refused);
  CHECK(r.error().context() == "udp recv (peer " + closed.to_string() + ")");
}
#endif

TEST_CASE("udp: a datagram above the protocol's limit is refused, naming size and destination") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  std::vector<std::byte> huge(70'000);
  auto r = sync_wait(io, as_task(a.send_to(huge, where(b))));
  REQUIRE(!r);
  CHECK(r.error() == errc::message_too_large);
  CHECK(r.error().context() == fmt::format("udp send_to {} (70000 bytes)", where(b)));
  // The largest IPv4 datagram goes through whole.
  std::vector<std::byte> max(65'507, std::byte{7});
  auto ok = sync_wait(io, as_task(a.send_to(max, where(b))));
  REQUIRE(ok);
  std::vector<std::byte> buf(70'000);
  auto got = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(got);
  CHECK(got->size == 65'507);
}

TEST_CASE("udp: receives are cancellable and bounded; closed sockets say so") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  std::array<std::byte, 16> buf;
  auto timed = sync_wait(io, as_task(with_timeout(b.recv_from(buf), 20ms)));
  REQUIRE(!timed);
  CHECK(timed.error() == errc::timed_out);
  CHECK(timed.error().context() ==
        fmt::format("udp recv_from on {} after a deadline of 20 ms", where(b)));
  // Nothing was lost by the timeout: the next datagram arrives.
  auto s = sync_wait(io, as_task(a.send_to("after", where(b))));
  REQUIRE(s);
  auto got = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(got);
  CHECK(got->size == 5);

  // Closed while a receive waits: it ends with operation_aborted.
  auto waiter = [&]() -> task<result<udp::datagram>> { co_return co_await b.recv_from(buf); };
  auto closer = [&]() -> task<void> {
    co_await yield_turns(io, 2);
    b.close();
  };
  auto [r, ignored] = sync_wait(io, when_all(boxed(waiter()), closer()));
  REQUIRE(!r.value);
  CHECK(r.value.error() == errc::operation_aborted);
  auto after = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(!after);
  CHECK(after.error() == errc::not_a_socket);
  CHECK(!udp::socket::bind(io, *endpoint::local("/tmp/x")));
}

TEST_CASE("udp: a burst of datagrams arrives in order, none lost") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  constexpr int n = 500;
  auto sender = [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      const std::string m = fmt::format("{:06}", i);
      auto r = co_await a.send_to(m, where(b));
      REQUIRE(r);
    }
  };
  auto receiver = [&]() -> task<int> {
    int expect = 0;
    std::array<std::byte, 16> buf;
    while (expect < n) {
      auto r = co_await b.recv_from(buf);
      REQUIRE(r);
      CHECK(text(std::span(buf).first(r->size)) == fmt::format("{:06}", expect));
      ++expect;
    }
    co_return expect;
  };
  auto [ignored, count] = sync_wait(io, when_all(sender(), receiver()));
  CHECK(count == n);
}

TEST_CASE("udp: receives destroyed after they completed, unresumed, keep their datagrams") {
  io_context io;
  constexpr int n = 3 * io_context::turn_budget;
  auto sender = bound(io);
  std::vector<udp::socket> socks;
  for (int i = 0; i < n; ++i)
    socks.push_back(bound(io));
  for (int i = 0; i < n; ++i) {
    auto w = sync_wait(io, as_task(sender.send_to(fmt::format("{:08}", i), where(socks[i]))));
    REQUIRE(w);
  }
  std::vector<std::string> got(n);
  auto receiver = [&](int i) -> task<void> {
    std::array<std::byte, 64> buf;
    auto r = co_await socks[i].recv_from(buf);
    if (r) got[i] = text(std::span(buf).first(r->size));
  };
  spawn_then_destroy(io, n, receiver);
  for (int i = 0; i < n; ++i) {
    if (got[i].empty()) {
      std::array<std::byte, 64> buf;
      auto r = sync_wait(io, as_task(socks[i].recv_from(buf)));
      REQUIRE(r);
      CHECK(r->from == where(sender));
      got[i] = text(std::span(buf).first(r->size));
    }
    CHECK(got[i] == fmt::format("{:08}", i));
  }
}

// ------------------------------------------------- recv_some_from (lent buffers)

namespace {
std::string lent_text(const udp::lent_datagram& d) { return text(d.data.data()); }
} // namespace

TEST_CASE("udp: recv_some_from lends each datagram with its sender, IPv4 and IPv6, empty "
          "ones included") {
  io_context io;
  for (const endpoint& any : {endpoint::loopback_v4(0), endpoint::loopback_v6(0)}) {
    auto a = bound(io, any);
    auto b = bound(io, any);
    for (const char* m : {"first", "", "third one"}) {
      auto w = sync_wait(io, as_task(a.send_to(m, where(b))));
      REQUIRE(w);
    }
    for (const std::string m : {"first", "", "third one"}) {
      auto got = sync_wait(io, as_task(b.recv_some_from()));
      REQUIRE(got);
      CHECK(lent_text(*got) == m);
      CHECK(got->data.size() == m.size());
      CHECK(got->from == where(a));
    }
    // The receive pool lent them; they all went back.
    CHECK(io.stats().buffers_in_use == 0);
  }
}

TEST_CASE("udp: recv_some_from: a datagram bigger than a pool buffer is an error naming its "
          "size and the limit; the next one arrives whole") {
  io_context::options o;
  o.recv_buffer_size = 1024;
  io_context io(o);
  auto a = bound(io);
  auto b = bound(io);
  const std::string big(3000, 'B');
  REQUIRE(sync_wait(io, as_task(a.send_to(big, where(b)))));
  REQUIRE(sync_wait(io, as_task(a.send_to("next", where(b)))));
  auto cut = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(!cut);
  CHECK(cut.error() == errc::message_too_large);
  const std::string msg = cut.error().message();
  INFO(msg);
  CHECK(msg.find(fmt::format("udp recv_some_from on {} from {}", where(b), where(a))) !=
        std::string::npos);
  CHECK(msg.find("(880 bytes for the datagram: options recv_buffer_size 1024, less 144") !=
        std::string::npos);
#ifndef _WIN32
  CHECK(msg.find("a datagram of 3000 bytes") != std::string::npos);
#endif
  auto next = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(next);
  CHECK(lent_text(*next) == "next");
  next->data.release();
  CHECK(io.stats().buffers_in_use == 0);

  // A pool whose buffers cannot hold a header and a sender: said at once.
  io_context::options tiny;
  tiny.recv_buffer_size = 100;
  io_context io2(tiny);
  auto c = bound(io2);
  auto r = sync_wait(io2, as_task(c.recv_some_from()));
  REQUIRE(!r);
  CHECK(r.error() == errc::buffer_too_small);
  CHECK(r.error().message().find("receive buffers (100 bytes, options recv_buffer_size)") !=
        std::string::npos);
}

TEST_CASE("udp: recv_some_from through an exhausted pool waits for a buffer to come back; a "
          "burst arrives in order, none lost") {
  io_context::options o;
  o.recv_buffer_size = 512;
  o.recv_buffers = 2;
  o.max_recv_buffers = 4;
  io_context io(o);
  auto a = bound(io);
  auto b = bound(io);
  constexpr int n = 40;
  for (int i = 0; i < n; ++i)
    REQUIRE(sync_wait(io, as_task(a.send_to(fmt::format("{:04}", i), where(b)))));
  // Hold as many datagrams as the pool has buffers: the next receive must wait, not fail.
  std::vector<udp::lent_datagram> held;
  for (int i = 0; i < 4; ++i) {
    auto d = sync_wait(io, as_task(b.recv_some_from()));
    REQUIRE(d);
    CHECK(lent_text(*d) == fmt::format("{:04}", i));
    held.push_back(std::move(*d));
  }
  CHECK(io.stats().buffers_in_use == 4);
  std::optional<result<udp::lent_datagram>> fifth;
  auto reader = [&]() -> task<void> { fifth.emplace(co_await b.recv_some_from()); };
  auto releaser = [&]() -> task<void> {
    co_await yield_turns(io, 5);
    CHECK(!fifth.has_value()); // starved, still waiting
    held.front().data.release();
  };
  sync_wait(io, when_all(reader(), releaser()));
  REQUIRE(fifth.has_value());
  REQUIRE(*fifth);
  CHECK(lent_text(**fifth) == "0004");
  fifth.reset();
  held.clear();
  // The rest, in order, each buffer going back before the next receive.
  for (int i = 5; i < n; ++i) {
    auto d = sync_wait(io, as_task(b.recv_some_from()));
    REQUIRE(d);
    CHECK(lent_text(*d) == fmt::format("{:04}", i));
  }
  CHECK(io.stats().buffers_in_use == 0);
}

TEST_CASE("udp: recv_from after recv_some_from takes the next datagrams in order, truncation "
          "still reported") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  for (const char* m : {"one", "two", "a longer third", "four"})
    REQUIRE(sync_wait(io, as_task(a.send_to(m, where(b)))));
  auto first = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(first);
  CHECK(lent_text(*first) == "one");
  std::array<std::byte, 8> buf;
  auto second = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(second);
  CHECK(text(std::span(buf).first(second->size)) == "two");
  CHECK(second->from == where(a));
  auto third = sync_wait(io, as_task(b.recv_from(buf)));
  REQUIRE(!third);
  CHECK(third.error() == errc::message_too_large);
  CHECK(third.error().message().find("a datagram of 14 bytes does not fit the 8-byte buffer") !=
        std::string::npos);
  CHECK(text(buf) == "a longer");
  auto fourth = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(fourth);
  CHECK(lent_text(*fourth) == "four");
  // And on a connected socket: recv() too.
  REQUIRE(b.connect(where(a)));
  REQUIRE(sync_wait(io, as_task(a.send_to("five", where(b)))));
  auto fifth = sync_wait(io, as_task(b.recv(buf)));
  REQUIRE(fifth);
  CHECK(text(std::span(buf).first(*fifth)) == "five");
}

TEST_CASE("udp: recv_some_from is cancellable and bounded; close() ends it; nothing received "
          "is lost") {
  io_context io;
  auto a = bound(io);
  auto b = bound(io);
  auto timed = sync_wait(io, as_task(with_timeout(b.recv_some_from(), 20ms)));
  REQUIRE(!timed);
  CHECK(timed.error() == errc::timed_out);
  CHECK(timed.error().context() ==
        fmt::format("udp recv_some_from on {} after a deadline of 20 ms", where(b)));
  REQUIRE(sync_wait(io, as_task(a.send_to("after", where(b)))));
  auto got = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(got);
  CHECK(lent_text(*got) == "after");
  got->data.release();

  // Stopped through its stop token.
  {
    stop_source stop;
    auto waiter = [&]() -> task<result<udp::lent_datagram>> {
      co_return co_await with_stop_token(as_task(b.recv_some_from()), stop.get_token());
    };
    auto stopper = [&]() -> task<void> {
      co_await yield_turns(io, 2);
      stop.request_stop();
    };
    auto [r, ignored] = sync_wait(io, when_all(boxed(waiter()), stopper()));
    REQUIRE(!r.value);
    CHECK(r.value.error() == errc::operation_aborted);
  }

  // Closed while a receive waits: it ends with operation_aborted.
  auto waiter = [&]() -> task<result<udp::lent_datagram>> {
    co_return co_await b.recv_some_from();
  };
  auto closer = [&]() -> task<void> {
    co_await yield_turns(io, 2);
    b.close();
  };
  auto [r, ignored] = sync_wait(io, when_all(boxed(waiter()), closer()));
  REQUIRE(!r.value);
  CHECK(r.value.error() == errc::operation_aborted);
  auto after = sync_wait(io, as_task(b.recv_some_from()));
  REQUIRE(!after);
  CHECK(after.error() == errc::not_a_socket);
  CHECK(io.stats().buffers_in_use == 0);
}

TEST_CASE("udp: recv_some_from destroyed after it completed, unresumed, leaves its datagram "
          "first in line") {
  io_context io;
  constexpr int n = 3 * io_context::turn_budget;
  auto sender = bound(io);
  std::vector<udp::socket> socks;
  for (int i = 0; i < n; ++i)
    socks.push_back(bound(io));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < 2; ++k)
      REQUIRE(
          sync_wait(io, as_task(sender.send_to(fmt::format("{:04}.{}", i, k), where(socks[i])))));
  std::vector<std::vector<std::string>> got(n);
  auto receiver = [&](int i) -> task<void> {
    auto r = co_await socks[i].recv_some_from();
    if (r) got[i].push_back(lent_text(*r));
  };
  spawn_then_destroy(io, n, receiver);
  for (int i = 0; i < n; ++i) {
    while (got[i].size() < 2) {
      auto r = sync_wait(io, as_task(socks[i].recv_some_from()));
      REQUIRE(r);
      CHECK(r->from == where(sender));
      got[i].push_back(lent_text(*r));
    }
    CHECK(got[i] == std::vector<std::string>{fmt::format("{:04}.0", i), fmt::format("{:04}.1", i)});
  }
  socks.clear();
  CHECK(io.stats().buffers_in_use == 0);
}
