// signal_set on Windows: console control events (Ctrl-C → SIGINT; Ctrl-Break →
// SIGBREAK; close, logoff, shutdown → SIGTERM) and the C runtime's signals (raise()),
// delivered by the IOCP backend to the sets that asked for them. A wait is a `read`
// operation whose handle is the set's id; the backend completes it with the signal
// number.
#include <sluice/signal.hpp>

#include "../backend.hpp"

#include <atomic>
#include <csignal>

namespace sluice {
namespace detail {
void iocp_subscribe_signals(io_context& io, std::uintptr_t id, const std::vector<int>& signals);
void iocp_unsubscribe_signals(std::uintptr_t id);
} // namespace detail

namespace {
std::atomic<std::uintptr_t> next_set_id{1};
}

signal_set::signal_set(io_context& io, std::initializer_list<int> signals)
    : io_(&io), signals_(signals) {
  const std::uintptr_t id = next_set_id.fetch_add(1);
  source_ = static_cast<detail::native_handle>(id);
  detail::iocp_subscribe_signals(io, id, signals_);
}

signal_set::~signal_set() {
  detail::iocp_unsubscribe_signals(static_cast<std::uintptr_t>(source_));
}

namespace detail {

signal_awaiter::signal_awaiter(signal_set& s) {
  op_.ctx = s.io_;
  op_.code = op_code::read;
  op_.handle = s.source_;
  op_.length = 1;
}

result<int> signal_awaiter::await_resume() {
  finish();
  if (op_.error) return error(op_.error, "signal_set::wait");
  return static_cast<int>(signo_);
}

} // namespace detail
} // namespace sluice
