// systemd socket activation: listening sockets a service manager opened and passed to
// this process (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, descriptors from 3 on, as
// sd_listen_fds(3) describes). docs/service.md has the design.
//
//   auto acc = activation::listen_or_bind(io, endpoint::loopback_v4(8080));
//   // the manager's socket when it passed one, otherwise one bound here
#pragma once

#include <sluice/export.hpp>

#include <sluice/net/tcp.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::activation {

/// A socket the service manager passed.
struct inherited {
  sluice::detail::native_handle handle = sluice::detail::invalid_handle; ///< its descriptor
  std::string name; ///< from LISTEN_FDNAMES ("unknown" where it gave none, as systemd)
};

/// The sockets passed to this process, in order; empty when none were (the variables
/// are absent, or LISTEN_PID names another process: a parent's, inherited by
/// mistake). Each becomes close-on-exec. With `unset_environment`, the variables are
/// removed, so that child processes do not take them for theirs. Malformed variables
/// are an error naming the variable and its value. Windows: always empty.
SLUICE_API result<std::vector<inherited>> listen_fds(bool unset_environment = true);

/// The listening socket a server should use: the passed socket named `name` (the first
/// one when `name` is empty) when the manager passed any, otherwise one bound to
/// `fallback` with `o`. Errors say which: no passed socket of that name (listing the
/// names there are), one that is not listening, or the bind's own error. Call it once
/// per process (the variables are consumed); passed sockets it does not take are closed.
SLUICE_API result<tcp::acceptor> listen_or_bind(io_context& io, const endpoint& fallback,
                                                std::string_view name = {},
                                                const tcp::listen_options& o = {});

} // namespace sluice::activation
