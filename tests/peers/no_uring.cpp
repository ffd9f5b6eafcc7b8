// no_uring: runs a command with io_uring_setup denied by a seccomp filter, the way
// Docker's default profile denies it (the call fails with EPERM).
//
//   no_uring COMMAND [ARGS...]
//
// Exits 3 if the filter cannot be installed or does not take effect, so that a test
// never passes without actually exercising the fallback.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <linux/io_uring.h>
#include <seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: no_uring COMMAND [ARGS...]\n");
    return 2;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr ||
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(io_uring_setup), 0) != 0 ||
      seccomp_load(ctx) != 0) {
    std::fprintf(stderr, "no_uring: cannot install the seccomp filter\n");
    return 3;
  }
  seccomp_release(ctx);
  io_uring_params p{};
  const long fd = ::syscall(__NR_io_uring_setup, 4, &p);
  if (fd >= 0 || errno != EPERM) {
    std::fprintf(stderr, "no_uring: io_uring_setup was not denied (%s)\n", std::strerror(errno));
    return 3;
  }
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "no_uring: exec %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
