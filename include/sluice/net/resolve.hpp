// resolve: asynchronous name resolution.
//
//   auto eps = co_await resolve(io, "localhost", "http");   // result<std::vector<endpoint>>
//   if (!eps) fmt::print("{}\n", eps.error().message());
//   // "resolve nosuch.invalid:http: Name or service not known: host not found"
//
// The system resolver (getaddrinfo: /etc/hosts, DNS, whatever the system is set up
// for) blocks, so it runs on a small pool of threads shared by the process (as Asio
// does); the coroutine waits without blocking its loop. An IP literal with a numeric
// port needs no thread and completes at once.
//
// Stopping the waiting task (its stop token, with_timeout) ends the wait at once with
// operation_aborted (timed_out); the lookup in progress cannot be interrupted, so it
// finishes on its thread and its answer is dropped. The coroutine may be destroyed
// while it waits, and the io_context too: a late answer never reaches either.
#pragma once

#include <sluice/export.hpp>

#include <sluice/error.hpp>
#include <sluice/io_context.hpp>
#include <sluice/net/endpoint.hpp>
#include <sluice/task.hpp>
#include <string>
#include <vector>

namespace sluice {

/// How resolve() looks a name up.
struct resolve_options {
  /// Which addresses to return.
  enum class family_filter : std::uint8_t {
    any, ///< IPv4 and IPv6, in the system's order of preference
    v4,  ///< IPv4 only
    v6,  ///< IPv6 only
  };
  family_filter family = family_filter::any; ///< which addresses
  /// Lookups running at once in the whole process; more wait for a thread. The first
  /// call sets it (later values are ignored).
  unsigned max_threads = 4;
};

/// The addresses of `host` (a name or an IP literal) with the port of `service` (a
/// number or a service name such as "http"), in the system's order, without
/// duplicates. Errors name the host and the service: host_not_found (no such name,
/// or no address of the family asked for), invalid_endpoint (an unknown service), or
/// operation_aborted / timed_out when the waiting task was stopped.
SLUICE_API task<result<std::vector<endpoint>>>
resolve(io_context& io, std::string host, std::string service, resolve_options options = {});

} // namespace sluice
