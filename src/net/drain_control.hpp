// The signal handling of serve_until_signalled, shared by sluice::server and
// sluice::sharded_server: the first signal drains (bounded), a second one during the
// drain aborts. Internal to the sluice library.
#pragma once

#include <chrono>
#include <functional>
#include <sluice/net/handover.hpp>
#include <sluice/server.hpp>
#include <sluice/signal.hpp>
#include <string>

namespace sluice::detail {

// What the control drives.
struct drain_controls {
  std::function<task<drain_report>(std::chrono::milliseconds)> drain;
  std::function<task<void>()> abort;
  std::function<std::size_t()> connections;
  std::function<std::vector<native_handle>()> listeners; // what a hand-over gives
};

// Waits for a signal of `sigs` — or, with a hand-over session, for a successor that
// took the listeners over (and first confirms the session's own take-over; SIGHUP
// starts its restart command) — then drains through `c` within `deadline` (a second
// signal aborts), reports on standard error prefixed with `name`; 0 after a drain that
// finished by itself, 1 after an abort. Runs on `io`, the loop of the listeners' server.
task<int> drain_on_signals(io_context& io, signal_set& sigs, drain_controls c,
                           std::chrono::milliseconds deadline, std::string name,
                           handover::session* hs);

} // namespace sluice::detail
