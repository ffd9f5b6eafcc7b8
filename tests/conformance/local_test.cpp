// Unix-domain stream sockets on every backend: paths and abstract names, stale socket
// files, the recv_disconnect contract and graceful close over AF_UNIX, connected pairs,
// and descriptor passing (SCM_RIGHTS) with its limits and lifetimes.
//
// Its own executable: where the OS has no AF_UNIX sockets (Wine 8 fails
// WSASocket(AF_UNIX)), it reports skipped (exit code 77) instead of failing.
#define CATCH_CONFIG_RUNNER
#include "../support.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sluice/net/local.hpp>

#ifndef _WIN32
#include <sys/socket.h>
#include <unistd.h>
#else
#include <process.h>
#endif

using namespace sluice;
using namespace test;

namespace {

// A socket path of its own in the temporary directory, removed when done.
struct temp_path {
  std::string path;
  temp_path() {
    static std::atomic<int> n{0};
#ifdef _WIN32
    const int pid = _getpid();
#else
    const int pid = static_cast<int>(::getpid());
#endif
    path = (std::filesystem::temp_directory_path() /
            fmt::format("sluice-{}-{}.sock", pid, n.fetch_add(1)))
               .string();
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
  ~temp_path() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

task<pair> local_pair(io_context& io, local::acceptor& acc) {
  auto [c, s] = co_await when_all(tcp::connect(io, acc.local_endpoint()), as_task(acc.accept()));
  REQUIRE(c);
  REQUIRE(s);
  co_return pair{std::move(*c), std::move(*s)};
}

} // namespace

int main(int argc, char** argv) {
  {
    io_context io;
    temp_path tp;
    auto probe = local::bind(io, tp.path);
#ifdef _WIN32
    constexpr int no_family = 10047; // WSAEAFNOSUPPORT, which Winsock's category leaves unmapped
#else
    constexpr int no_family = EAFNOSUPPORT;
#endif
    if (!probe && (probe.error() == std::errc::address_family_not_supported ||
                   probe.error().code().value() == no_family)) {
      fmt::print("skipped: no AF_UNIX sockets here ({})\n", probe.error().message());
      return 77;
    }
  }
  return Catch::Session().run(argc, argv);
}

TEST_CASE("local endpoints: paths, abstract names, limits and text") {
  auto p = endpoint::local("/run/app.sock");
  REQUIRE(p);
  CHECK(p->is_local());
  CHECK(!p->is_abstract());
  CHECK(p->to_string() == "unix:/run/app.sock");
  CHECK(fmt::format("{}", *p) == "unix:/run/app.sock");
  auto a = endpoint::parse("unix:@sluice-test");
  REQUIRE(a);
  CHECK(a->is_abstract());
  CHECK(a->path() == "@sluice-test");
  CHECK(*endpoint::parse("unix:/run/app.sock") == *p);
  CHECK(endpoint::local("")->to_string() == "unix:(unnamed)");

  auto too_long = endpoint::local(std::string(108, 'x'));
  REQUIRE(!too_long);
  CHECK(too_long.error() == errc::invalid_endpoint);
  CHECK(too_long.error().context().find("is 108 bytes; the limit is 107") != std::string::npos);
  CHECK(endpoint::local(std::string(107, 'x')));
  auto nul = endpoint::local(std::string("a\0b", 3));
  REQUIRE(!nul);
  CHECK(nul.error().context().find("NUL") != std::string::npos);
  CHECK(!endpoint::parse("unix:"));
  CHECK(!endpoint::local("@"));
}

TEST_CASE("local: echo over a socket path, with the addresses each side sees") {
  io_context io;
  temp_path tp;
  auto acc = local::bind(io, tp.path);
  REQUIRE(acc);
  CHECK(acc->local_endpoint().to_string() == "unix:" + tp.path);
  CHECK(std::filesystem::exists(tp.path));
  auto [c, s] = sync_wait(io, when_all(local::connect(io, tp.path), as_task(acc->accept())));
  REQUIRE(c);
  REQUIRE(s);
  CHECK(c->remote_endpoint()->to_string() == "unix:" + tp.path);
  CHECK(s->remote_endpoint()->to_string() == "unix:(unnamed)");
  auto echo = [&]() -> task<void> {
    for (;;) {
      std::array<std::byte, 4096> buf;
      auto r = co_await s->recv(buf);
      REQUIRE(r);
      if (*r == 0) break;
      auto w = co_await s->send_all(std::span(buf).first(*r));
      REQUIRE(w);
    }
    auto f = co_await s->shutdown_send();
    REQUIRE(f);
  };
  std::string big(300'000, 'q');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + i % 23);
  auto client = [&]() -> task<std::string> {
    auto [w, back] = co_await when_all(
        [&]() -> task<void> {
          auto r = co_await c->send_all(big);
          REQUIRE(r);
          auto f = co_await c->shutdown_send();
          REQUIRE(f);
        }(),
        recv_to_end(*c));
    co_return back;
  };
  auto [e, back] = sync_wait(io, when_all(echo(), client()));
  CHECK(back == big);
}

TEST_CASE("local: the recv_disconnect contract and graceful close hold over AF_UNIX") {
  io_context io;
  temp_path tp;
  auto acc = local::bind(io, tp.path);
  REQUIRE(acc);
  auto p = sync_wait(io, local_pair(io, *acc));
  // recv_disconnect: no disconnect data on a stream socket, later receives fail with
  // shut_down, the send side still works.
  std::array<std::byte, 8> data;
  auto d = sync_wait(io, as_task(p.server.recv_disconnect(data)));
  REQUIRE(d);
  CHECK(*d == 0);
  std::array<std::byte, 8> buf;
  auto r = sync_wait(io, as_task(p.server.recv(buf)));
  REQUIRE(!r);
  CHECK(r.error() == errc::shut_down);
  auto w = sync_wait(io, as_task(p.server.send_all(bytes("still here"))));
  REQUIRE(w);
  CHECK(sync_wait(io, recv_exactly(p.client, 10)) == "still here");
  auto nd = sync_wait(io, as_task(p.client.send_disconnect(bytes("x"))));
  REQUIRE(!nd);
  CHECK(nd.error() == errc::no_protocol_option);
  CHECK(nd.error().message().find("(peer unix:") != std::string::npos);

  // Graceful close on a fresh pair: FIN, then the peer's FIN awaited.
  auto q = sync_wait(io, local_pair(io, *acc));
  auto w2 = sync_wait(io, as_task(q.client.send_all(bytes("last words"))));
  REQUIRE(w2);
  auto [rep, end] = sync_wait(io, when_all(q.server.graceful_close(), [&]() -> task<std::string> {
                                auto got = co_await recv_to_end(q.client);
                                q.client.close();
                                co_return got;
                              }()));
  CHECK(rep.peer_fin_seen);
  CHECK(!rep.aborted);
  CHECK(rep.bytes_discarded == 10);
  CHECK(end.empty());
}

TEST_CASE("local: a stale socket file is removed; a live one, or a file that is not a socket, "
          "is not") {
  io_context io;
  temp_path tp;
  {
    auto first = local::bind(io, tp.path);
    REQUIRE(first);
  } // closed: the file stays behind, as after a crash
  CHECK(std::filesystem::exists(tp.path));
  auto again = local::bind(io, tp.path);
  REQUIRE(again); // the stale file was removed, the bind retried

  auto taken = local::bind(io, tp.path);
  REQUIRE(!taken);
  CHECK(taken.error() == errc::address_in_use);
  CHECK(taken.error().message().find("unix:" + tp.path + ": a server is accepting") !=
        std::string::npos);
  CHECK(std::filesystem::exists(tp.path));
  again->close();

  auto kept = local::bind(io, tp.path, {.remove_stale_socket = false});
  REQUIRE(!kept);
  CHECK(kept.error() == errc::address_in_use);

  temp_path plain;
  std::ofstream(plain.path) << "not a socket";
  auto refused = local::bind(io, plain.path);
  REQUIRE(!refused);
  CHECK(refused.error() == errc::address_in_use);
  CHECK(refused.error().message().find("is not a socket (left as it is)") != std::string::npos);
  CHECK(std::filesystem::exists(plain.path));

  auto reuse = local::bind(io, tp.path, {.reuse_port = true});
  REQUIRE(!reuse);
  CHECK(reuse.error() == errc::no_protocol_option);
}

TEST_CASE("local: connecting where nobody listens names the path") {
  io_context io;
  temp_path tp;
  auto r = sync_wait(io, local::connect(io, tp.path));
  REQUIRE(!r);
  CHECK(r.error() == std::errc::no_such_file_or_directory);
  CHECK(r.error().context() == "connect to unix:" + tp.path);
  auto too_long = sync_wait(io, local::connect(io, "/" + std::string(200, 'd')));
  REQUIRE(!too_long);
  CHECK(too_long.error() == errc::invalid_endpoint);
}

#ifndef _WIN32

TEST_CASE("local: abstract names leave no file and free the name with the socket") {
  io_context io;
  const std::string name = fmt::format("@sluice-test-{}", ::getpid());
  {
    auto acc = local::bind(io, name);
    REQUIRE(acc);
    CHECK(acc->local_endpoint().path() == name);
    auto p = sync_wait(io, local_pair(io, *acc));
    auto w = sync_wait(io, as_task(p.client.send_all(bytes("abstract"))));
    REQUIRE(w);
    CHECK(sync_wait(io, recv_exactly(p.server, 8)) == "abstract");
    auto dup = local::bind(io, name);
    REQUIRE(!dup);
    CHECK(dup.error() == errc::address_in_use);
  }
  // The name goes with the socket's last reference; io_uring drops its reference when
  // the loop reaps the cancelled accept, so let it turn first.
  sync_wait(io, yield_turns(io, 2));
  auto again = local::bind(io, name);
  INFO((again ? std::string() : again.error().message()));
  CHECK(again);
}

TEST_CASE("local::pair: two connected streams") {
  io_context io;
  auto p = local::pair(io);
  REQUIRE(p);
  auto w = sync_wait(io, as_task(p->first.send_all(bytes("ping"))));
  REQUIRE(w);
  CHECK(sync_wait(io, recv_exactly(p->second, 4)) == "ping");
  auto w2 = sync_wait(io, as_task(p->second.send_all(bytes("pong"))));
  REQUIRE(w2);
  CHECK(sync_wait(io, recv_exactly(p->first, 4)) == "pong");
}

TEST_CASE("send_fds/recv_fds: a listening socket handed over keeps accepting") {
  io_context io;
  auto listener = loopback_acceptor(io);
  const endpoint at = listener.local_endpoint();
  auto p = local::pair(io);
  REQUIRE(p);
  const local::native_handle_type h = listener.native_handle();
  auto sent = sync_wait(io, as_task(local::send_fds(p->first, bytes("L1"), std::span(&h, 1))));
  REQUIRE(sent);
  CHECK(*sent == 2);
  listener.close(); // the receiver's duplicate keeps the socket listening
  std::array<std::byte, 16> buf;
  auto got = sync_wait(io, as_task(local::recv_fds(p->second, buf)));
  REQUIRE(got);
  CHECK(got->bytes == 2);
  CHECK(text(std::span(buf).first(2)) == "L1");
  REQUIRE(got->fds.size() == 1);
  CHECK(!got->fds_truncated);
  auto adopted = tcp::acceptor::adopt(io, got->fds[0].release());
  REQUIRE(adopted);
  CHECK(adopted->local_endpoint() == at);
  auto [c, s] = sync_wait(io, when_all(tcp::connect(io, at), as_task(adopted->accept())));
  REQUIRE(c);
  REQUIRE(s);
  auto w = sync_wait(io, as_task(c->send_all(bytes("via the new owner"))));
  REQUIRE(w);
  CHECK(sync_wait(io, recv_exactly(*s, 17)) == "via the new owner");

  // A connected stream is not a listener: adopt() says so.
  auto not_listening = tcp::acceptor::adopt(io, s->native_handle());
  REQUIRE(!not_listening);
  CHECK(not_listening.error().message().find("is not listening") != std::string::npos);
}

TEST_CASE("send_fds/recv_fds: several descriptors, a short buffer, then the rest of the bytes") {
  const long fds_before = open_descriptors();
  {
    io_context io;
    auto p = local::pair(io);
    REQUIRE(p);
    int pipes[2][2];
    REQUIRE(::pipe(pipes[0]) == 0);
    REQUIRE(::pipe(pipes[1]) == 0);
    const std::array<local::native_handle_type, 3> out{pipes[0][1], pipes[1][1], pipes[0][1]};
    auto sent =
        sync_wait(io, as_task(local::send_fds(p->first, bytes("0123456789"), std::span(out))));
    REQUIRE(sent);
    CHECK(*sent == 10);
    std::array<std::byte, 4> small;
    auto first = sync_wait(io, as_task(local::recv_fds(p->second, small)));
    REQUIRE(first);
    CHECK(first->bytes == 4);
    REQUIRE(first->fds.size() == 3);
    // The received descriptors are duplicates of the pipes' write ends, close-on-exec.
    REQUIRE(::write(static_cast<int>(first->fds[1].get()), "z", 1) == 1);
    char c = 0;
    REQUIRE(::read(pipes[1][0], &c, 1) == 1);
    CHECK(c == 'z');
    std::array<std::byte, 16> rest;
    auto second = sync_wait(io, as_task(local::recv_fds(p->second, rest)));
    REQUIRE(second);
    CHECK(text(std::span(rest).first(second->bytes)) == "456789");
    CHECK(second->fds.empty());
    for (auto& pp : pipes) {
      ::close(pp[0]);
      ::close(pp[1]);
    }
  }
  if (fds_before >= 0) CHECK(open_descriptors() == fds_before);
}

TEST_CASE("send_fds/recv_fds: limits and misuse are errors that say which") {
  io_context io;
  auto p = local::pair(io);
  REQUIRE(p);
  const local::native_handle_type h = p->first.native_handle();
  auto empty = sync_wait(io, as_task(local::send_fds(p->first, {}, std::span(&h, 1))));
  REQUIRE(!empty);
  CHECK(empty.error() == std::errc::invalid_argument);
  CHECK(empty.error().context().find("data is empty") != std::string::npos);

  std::vector<local::native_handle_type> many(local::max_fds + 1, h);
  auto too_many = sync_wait(io, as_task(local::send_fds(p->first, bytes("x"), many)));
  REQUIRE(!too_many);
  CHECK(too_many.error().context().find("65 descriptors, 1 bytes; max_fds is 64") !=
        std::string::npos);

  // More descriptors than max_fds sent from outside: the first max_fds arrive, the
  // truncation is reported, nothing leaks.
  const long fds_before = open_descriptors();
  {
    std::vector<int> raw(local::max_fds + 6, static_cast<int>(h));
    std::vector<unsigned char> control(CMSG_SPACE(raw.size() * sizeof(int)));
    msghdr m{};
    char one = 'T';
    iovec iov{&one, 1};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.data();
    m.msg_controllen = control.size();
    cmsghdr* cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(raw.size() * sizeof(int));
    std::memcpy(CMSG_DATA(cm), raw.data(), raw.size() * sizeof(int));
    REQUIRE(::sendmsg(static_cast<int>(h), &m, 0) == 1);
    std::array<std::byte, 4> buf;
    auto got = sync_wait(io, as_task(local::recv_fds(p->second, buf)));
    REQUIRE(got);
    CHECK(got->bytes == 1);
    CHECK(got->fds.size() == local::max_fds);
    CHECK(got->fds_truncated);
  }
  if (fds_before >= 0) CHECK(open_descriptors() == fds_before);

  // A stream switched to lent buffers cannot take descriptors any more.
  auto w = sync_wait(io, as_task(p->first.send_all(bytes("lent"))));
  REQUIRE(w);
  auto some = sync_wait(io, as_task(p->second.recv_some()));
  REQUIRE(some);
  std::array<std::byte, 4> buf;
  auto refused = sync_wait(io, as_task(local::recv_fds(p->second, buf)));
  REQUIRE(!refused);
  CHECK(refused.error().context().find("lent buffers") != std::string::npos);
}

TEST_CASE("recv_fds: cancelled while waiting, then the descriptors still arrive") {
  io_context io;
  auto p = local::pair(io);
  REQUIRE(p);
  std::array<std::byte, 8> buf;
  auto timed = with_timeout(local::recv_fds(p->second, buf), 20ms);
  auto r = sync_wait(io, as_task(std::move(timed)));
  REQUIRE(!r);
  CHECK(r.error() == errc::timed_out);
  const local::native_handle_type h = p->first.native_handle();
  auto sent = sync_wait(io, as_task(local::send_fds(p->first, bytes("after"), std::span(&h, 1))));
  REQUIRE(sent);
  auto got = sync_wait(io, as_task(local::recv_fds(p->second, buf)));
  REQUIRE(got);
  CHECK(got->bytes == 5);
  CHECK(got->fds.size() == 1);
}

TEST_CASE("recv_fds destroyed after it received, unresumed: bytes kept, descriptors closed") {
  const long fds_before = open_descriptors();
  {
    io_context io;
    constexpr int n = 3 * io_context::turn_budget;
    std::vector<std::pair<tcp::stream, tcp::stream>> pairs;
    for (int i = 0; i < n; ++i) {
      auto p = local::pair(io);
      REQUIRE(p);
      pairs.push_back(std::move(*p));
    }
    for (int i = 0; i < n; ++i) {
      const local::native_handle_type h = pairs[i].first.native_handle();
      auto w = sync_wait(io, as_task(local::send_fds(pairs[i].first, bytes(fmt::format("{:08}", i)),
                                                     std::span(&h, 1))));
      REQUIRE(w);
    }
    std::vector<std::string> got(n);
    std::vector<local::unique_fd> kept;
    auto receiver = [&](int i) -> task<void> {
      std::array<std::byte, 64> buf;
      auto r = co_await local::recv_fds(pairs[i].second, buf);
      if (r) {
        got[i] = text(std::span(buf).first(r->bytes));
        for (auto& f : r->fds)
          kept.push_back(std::move(f));
      }
    };
    spawn_then_destroy(io, n, receiver);
    int destroyed = 0;
    for (int i = 0; i < n; ++i) {
      if (got[i].empty()) {
        ++destroyed;
        got[i] = sync_wait(io, recv_exactly(pairs[i].second, 8));
      }
      CHECK(got[i] == fmt::format("{:08}", i));
    }
    CHECK(kept.size() == static_cast<std::size_t>(n - destroyed));
  }
  if (fds_before >= 0) CHECK(open_descriptors() == fds_before);
}

#endif // !_WIN32

#ifdef _WIN32
TEST_CASE("send_fds/recv_fds on Windows: not supported, and said so") {
  io_context io;
  temp_path tp;
  auto acc = local::bind(io, tp.path);
  REQUIRE(acc);
  auto p = sync_wait(io, local_pair(io, *acc));
  const local::native_handle_type h = p.client.native_handle();
  auto s = sync_wait(io, as_task(local::send_fds(p.client, bytes("x"), std::span(&h, 1))));
  REQUIRE(!s);
  CHECK(s.error() == std::errc::operation_not_supported);
  CHECK(s.error().context().find("SCM_RIGHTS") != std::string::npos);
  CHECK(!local::pair(io));
}
#endif
