// udp_flood: the load generator of benchmarks/udp_bench.py. Plain POSIX sockets, one
// thread, so that the server under test is the only sluice code in the measurement.
//
//   udp_flood --port P [--clients 8] [--window 16] [--size 64] [--seconds 3]
//
// Each client socket keeps `window` datagrams of `size` bytes in flight to
// 127.0.0.1:P and sends one more for each echo it gets back. Prints one line:
// "datagrams N seconds S per_second R lost L" (lost: still in flight at the end, or
// dropped by the kernel when a socket buffer was full; a datagram not echoed within
// 200 ms is replaced, so a drop does not stall its client).
#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

long arg(int argc, char** argv, const char* name, long def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == std::string("--") + name)
      return std::strtol(argv[i + 1], nullptr, 10);
  return def;
}

} // namespace

int main(int argc, char** argv) {
  const long port = arg(argc, argv, "port", 0);
  const long clients = arg(argc, argv, "clients", 8);
  const long window = arg(argc, argv, "window", 16);
  const long size = arg(argc, argv, "size", 64);
  const long seconds = arg(argc, argv, "seconds", 3);
  if (port <= 0 || port > 65535 || clients < 1 || window < 1 || size < 1 || size > 65507) {
    std::fprintf(stderr, "udp_flood: --port 1..65535 is required; --clients, --window >= 1; "
                         "--size 1..65507\n");
    return 2;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<unsigned short>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  std::vector<pollfd> fds;
  std::vector<long> in_flight(static_cast<std::size_t>(clients), 0);
  std::vector<std::chrono::steady_clock::time_point> last(static_cast<std::size_t>(clients));
  std::vector<char> out(static_cast<std::size_t>(size), 'u');
  std::vector<char> in(65536);
  for (long c = 0; c < clients; ++c) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      std::perror("udp_flood: socket/connect");
      return 1;
    }
    fds.push_back({fd, POLLIN, 0});
  }
  auto send_one = [&](std::size_t c) {
    if (::send(fds[c].fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()))
      ++in_flight[c];
  };
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t c = 0; c < fds.size(); ++c) {
    for (long i = 0; i < window; ++i)
      send_one(c);
    last[c] = start;
  }
  long long echoed = 0, replaced = 0;
  const auto end = start + std::chrono::seconds(seconds);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) break;
    if (::poll(fds.data(), fds.size(), 50) < 0) {
      std::perror("udp_flood: poll");
      return 1;
    }
    const auto t = std::chrono::steady_clock::now();
    for (std::size_t c = 0; c < fds.size(); ++c) {
      if ((fds[c].revents & POLLIN) != 0) {
        for (;;) {
          const ssize_t n = ::recv(fds[c].fd, in.data(), in.size(), 0);
          if (n < 0) break;
          ++echoed;
          if (in_flight[c] > 0) --in_flight[c];
          last[c] = t;
          send_one(c);
        }
      }
      // Dropped somewhere (a full socket buffer): refill the window.
      if (t - last[c] > std::chrono::milliseconds(200)) {
        replaced += in_flight[c];
        in_flight[c] = 0;
        while (in_flight[c] < window)
          send_one(c);
        last[c] = t;
      }
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("datagrams %lld seconds %.3f per_second %.0f lost %lld\n", echoed, secs,
              static_cast<double>(echoed) / secs, replaced);
  for (auto& p : fds)
    ::close(p.fd);
  return 0;
}
