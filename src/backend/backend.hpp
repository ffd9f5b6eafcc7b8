// The backend contract — the one place where sluice branches on the platform.
//
// A backend turns detail::operation records into OS work and reports completions. It
// must provide, for sockets created by the socket_ops below:
//
//   submit(op)   start op (accept, connect, recv, send, shutdown, timeout, read). The
//                completion is delivered later, from poll() on the loop thread, by
//                calling io_context::complete(op) after filling op.res / op.error.
//                Never completes inline inside submit().
//   cancel(op)   ask for op to complete early with operation_aborted (ECANCELED or
//                its platform twin). Best effort: op may still complete normally.
//   cancel_all(h) the same for every operation on handle h (used by close()).
//   poll(block)  push queued submissions to the OS, wait for at least one completion
//                if `block`, dispatch all available completions. Loop thread only.
//   wake()       any thread: make a blocking poll() return soon; the backend then
//                calls io_context::run_remote() on the loop thread.
//   shutdown()   cancel every operation in flight and reap their completions (the
//                io_context does not resume their coroutines then), so that no
//                operation still refers to memory when its coroutine frame is freed.
//
// Which backends exist is decided here and in CMake, nowhere else:
//   SLUICE_HAVE_URING  Linux io_uring (src/backend/uring/)
//   SLUICE_HAVE_ASIO   standalone Asio reactor (src/backend/asio/)
//   SLUICE_HAVE_IOCP   Windows completion ports (src/backend/iocp/)
#pragma once

#include <memory>
#include <sluice/detail/operation.hpp>
#include <sluice/error.hpp>
#include <string_view>

namespace sluice::detail {

class backend {
public:
  virtual ~backend() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void submit(operation& op) = 0;
  virtual void cancel(operation& op) noexcept = 0;
  virtual void cancel_all(native_handle h) noexcept = 0;
  virtual void poll(bool block) = 0;
  virtual void wake() noexcept = 0;
  virtual void shutdown() noexcept = 0;
};

// Creates the backend named `name` ("" = the best available one). Fails with
// unsupported_backend for a name not built in, backend_unavailable when it cannot
// start here (the context says why).
result<std::unique_ptr<backend>> make_backend(io_context& io, std::string_view name);

} // namespace sluice::detail
