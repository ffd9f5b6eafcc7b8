#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#ifndef _WIN32
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// Every test case must leave descriptors 0, 1 and 2 as it found them. A stray close of
// a small descriptor number (a result nobody saw taken for a descriptor, say) closes
// stdin first, and the socket or ring that gets that number next is then closed under
// its owner: a test that fails far away, or hangs. This names the test case that did it.
// Descriptors not open at start are pointed at /dev/null, so that every case starts
// with all three open.
class standard_descriptors_kept : public Catch::TestEventListenerBase {
public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    TestEventListenerBase::testCaseStarting(info);
    for (int fd = 0; fd < 3; ++fd) {
      if (::fcntl(fd, F_GETFD) == -1) {
        const int null = ::open("/dev/null", O_RDWR);
        if (null >= 0 && null != fd) {
          ::dup2(null, fd);
          ::close(null);
        }
      }
      before_[fd] = identity(fd);
    }
  }

  void testCaseEnded(Catch::TestCaseStats const& stats) override {
    for (int fd = 0; fd < 3; ++fd) {
      if (identity(fd) == before_[fd]) continue;
      std::fprintf(stderr,
                   "test case \"%s\" closed or replaced descriptor %d (it was open when the "
                   "case began): some code closed a descriptor it did not own\n",
                   stats.testInfo.name.c_str(), fd);
      std::fflush(stderr);
      std::abort();
    }
    TestEventListenerBase::testCaseEnded(stats);
  }

private:
  struct id {
    dev_t dev = 0;
    ino_t ino = 0;
    bool open = false;
    bool operator==(const id&) const = default;
  };
  static id identity(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return {};
    return {st.st_dev, st.st_ino, true};
  }
  id before_[3];
};

} // namespace

CATCH_REGISTER_LISTENER(standard_descriptors_kept)
#endif
