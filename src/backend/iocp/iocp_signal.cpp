// signal_set on Windows: console control events (Ctrl-C → SIGINT; Ctrl-Break, close,
// logoff, shutdown → SIGTERM), delivered by the IOCP backend. A wait is a `read`
// operation without a handle, which the backend completes with the signal number.
#include <sluice/signal.hpp>

#include <csignal>

namespace sluice {

signal_set::signal_set(io_context& io, std::initializer_list<int> signals)
    : io_(&io), signals_(signals) {}

signal_set::~signal_set() = default;

namespace detail {

signal_awaiter::signal_awaiter(signal_set& s) {
  op_.ctx = s.io_;
  op_.code = op_code::read;
  op_.handle = invalid_handle;
  op_.length = 1;
}

result<int> signal_awaiter::await_resume() {
  finish();
  if (op_.error) return error(op_.error, "signal_set::wait");
  return static_cast<int>(signo_);
}

} // namespace detail
} // namespace sluice
