// spawn: start a task that nobody awaits. It runs on `io` until it finishes; the
// io_context counts it as work, so run() does not return while it is alive. An
// exception escaping it is reported on standard error with its message (never lost
// silently) and does not stop the loop. A spawned task still alive when its
// io_context is destroyed is destroyed with it (after every operation it had in
// flight was cancelled and reaped).
#pragma once

#include <sluice/export.hpp>

#include <sluice/detail/operation.hpp>
#include <sluice/io_context.hpp>
#include <sluice/stop_token.hpp>
#include <sluice/task.hpp>
#include <stop_token>

namespace sluice {

/// Called with an exception that escaped a spawned task. The default handler prints
/// "sluice: a spawned task ended with an exception: <what()>" on standard error.
/// Returns the previous handler. Set it before the loop runs (not synchronised).
using spawn_error_handler = void (*)(std::exception_ptr);
SLUICE_API spawn_error_handler set_spawn_error_handler(spawn_error_handler h) noexcept;

namespace detail {
SLUICE_API void report_spawn_failure(std::exception_ptr e) noexcept;

/// A group of spawned roots that ends with its owner (async_scope): it lists them, and
/// hears when one ends.
struct root_group {
  void (*child_ended)(root_group&) noexcept = nullptr;
  spawn_link* children = nullptr;

  void adopt(spawn_link& l) noexcept {
    l.prev = nullptr;
    l.next = children;
    if (children != nullptr) children->prev = &l;
    children = &l;
  }
  void drop(spawn_link& l) noexcept {
    if (l.prev != nullptr)
      l.prev->next = l.next;
    else if (children == &l)
      children = l.next;
    if (l.next != nullptr) l.next->prev = l.prev;
    l.prev = l.next = nullptr;
  }
};

struct detached {
  struct promise_type : pooled_frame {
    io_context* io = nullptr;
    stop_token token;
    spawn_link link;       ///< in io's list of spawned roots
    spawn_link group_link; ///< in the group's list, if any
    root_group* group = nullptr;
    resume_node start; ///< the first resumption, queued by spawn()
    // A root that finishes on another loop (it moved there with switch_to) is freed by
    // its own loop: this node takes its frame home.
    struct home_node : remote_node {
      std::coroutine_handle<promise_type> frame;
      static void destroy_frame(ready_node& n) noexcept {
        static_cast<home_node&>(n).frame.destroy();
      }
      static void drop_frame(remote_node& n) noexcept { destroy_frame(n); }
    } home;

    detached get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct final_awaiter {
      promise_type& p;
      // On its own loop (or none): the frame goes now, as with suspend_never.
      bool await_ready() const noexcept { return p.io == nullptr || io_context::current() == p.io; }
      void await_suspend(std::coroutine_handle<promise_type>) const noexcept {
        p.io->post_remote(p.home);
      }
      void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {*this}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { report_spawn_failure(std::current_exception()); }
    const stop_token& get_stop_token() const noexcept { return token; }
    /// Runs when the task ends and when its frame is destroyed unfinished: either way
    /// nothing may refer to the frame afterwards.
    ~promise_type() {
      start.unlink();
      if (io != nullptr) io->on_spawn_done(link);
      if (group != nullptr) {
        group->drop(group_link);
        group->child_ended(*group);
      }
    }
  };
  std::coroutine_handle<promise_type> h;
};

inline detached run_detached(task<void> t) { co_await std::move(t); }

/// Spawns `t` as a root of `io` (and of `group`, if any). Loop thread (or before run()).
inline void spawn_root(io_context& io, task<void> t, stop_token token, root_group* group) {
  auto d = run_detached(std::move(t));
  auto& p = d.h.promise();
  p.token = token;
  p.link.frame = d.h;
  p.group_link.frame = d.h;
  p.group = group;
  if (group != nullptr) group->adopt(p.group_link);
  p.start.handle = d.h;
  p.home.frame = d.h;
  p.home.run = &detached::promise_type::home_node::destroy_frame;
  p.home.drop = &detached::promise_type::home_node::drop_frame;
  io.on_spawn(p.link);
  p.io = &io;
  io.post(p.start);
}
} // namespace detail

/// Starts `t` on the next turn of `io`'s loop, under `token`. Loop thread (or before
/// run()).
inline void spawn(io_context& io, task<void> t, stop_token token = {}) {
  detail::spawn_root(io, std::move(t), token, nullptr);
}
/// The same, stopped by a std::stop_token.
inline void spawn(io_context& io, task<void> t, std::stop_token token) {
  spawn(io, with_stop_token(std::move(t), std::move(token)));
}

} // namespace sluice
