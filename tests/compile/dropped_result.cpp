// Compiled by ctest, not built: dropping an operation's result must not compile with
// -Werror. g++ 12 diagnoses an awaiter that is never awaited; it does not look at the
// value of a co_await expression, which clang++ diagnoses (result<T> is [[nodiscard]]).
#include <sluice/net/tcp.hpp>
#include <sluice/task.hpp>

sluice::task<void> send_and_forget(sluice::tcp::stream& s, std::span<const std::byte> buf) {
#if defined(KEEP_RESULT)
  auto r = co_await s.send_all(buf);
  (void)r;
#elif defined(FORGET_CO_AWAIT)
  s.send_all(buf); // never started: the operation is silently not done
  co_return;
#else
  co_await s.send_all(buf); // the outcome (an error, say) is dropped
#endif
}
