// task<T>: a lazy, move-only coroutine that produces a T (or rethrows into its awaiter).
//
// Starting a child does not rely on symmetric transfer being a tail call (GCC does not
// guarantee it, and a loop of synchronously completing co_awaits then grows the stack
// until it overflows). Instead the awaiting coroutine resumes the child inline; if the
// child runs to completion before the resume returns, await_suspend returns false and
// the parent simply continues on the same stack frame. Only a child that really
// suspended (on I/O, a timer...) resumes its parent later, from the event loop.
//
// Each task runs under a stop token (sluice::stop_token). A child inherits its
// parent's token when it is awaited; with_stop_token(t, tok) makes t stop when either
// tok or the inherited token stops; shield(t) runs t under no token at all. I/O
// awaiters read the token to cancel.
#pragma once

#include <coroutine>
#include <exception>
#include <sluice/detail/frame_pool.hpp>
#include <sluice/detail/op_canceller.hpp>
#include <sluice/stop_token.hpp>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice {

/// A lazy, move-only coroutine that produces a T: see the top of this header.
template <class T = void> class task;

namespace detail {

/// The parts of a task promise that awaiters rely on, whatever T is. Its frames are
/// recycled (frame_pool.hpp).
class promise_base : public pooled_frame {
public:
  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P> std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      p.finished_ = true;
      p.canceller_.release(); // while the token's source is surely alive
      // Started by when_all / when_any: they decide who runs next.
      if (p.on_done_ != nullptr) return p.on_done_(p.on_done_arg_);
      // Completed inside the parent's inline resume: the parent continues by itself.
      if (!p.parent_waits_) return std::noop_coroutine();
      return p.continuation_;
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  const stop_token& get_stop_token() const noexcept { return token_; }
  /// The task runs under `t` alone, whatever its awaiter's token (with_stop_token's
  /// combined token; an empty one for shield()).
  void bind_stop_token(stop_token t) noexcept {
    canceller_.release();
    token_ = t;
    token_bound_ = true;
  }
  void inherit_stop_token(const stop_token& t) noexcept {
    if (token_bound_) return;
    canceller_.release();
    token_ = t;
  }
  /// Cancels the operation this task is suspended on when its token is stopped
  /// (op_canceller.hpp): used by I/O awaiters through stop_of().
  op_canceller& canceller() noexcept { return canceller_; }

  /// Runs the child until it suspends or finishes; true if the caller must suspend.
  bool start_from(std::coroutine_handle<> self, std::coroutine_handle<> parent) {
    continuation_ = parent;
    self.resume();
    if (finished_) return false;
    parent_waits_ = true;
    return true;
  }

  /// Starts the task with a completion hook instead of a parent: when it finishes,
  /// on_done(arg) returns the coroutine to run next (std::noop_coroutine() for none).
  using done_hook = std::coroutine_handle<> (*)(void*) noexcept;
  void start_with_hook(std::coroutine_handle<> self, done_hook on_done, void* arg) {
    on_done_ = on_done;
    on_done_arg_ = arg;
    self.resume();
  }

  bool finished() const noexcept { return finished_; }

private:
  std::coroutine_handle<> continuation_;
  done_hook on_done_ = nullptr;
  void* on_done_arg_ = nullptr;
  stop_token token_;
  op_canceller canceller_;
  bool token_bound_ = false;
  bool finished_ = false;
  bool parent_waits_ = false;
};

template <class P>
concept has_stop_token = requires(const P& p) {
  { p.get_stop_token() } -> std::convertible_to<stop_token>;
};

/// The stop token of the coroutine that awaits, or an empty one.
template <class P> stop_token stop_token_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (has_stop_token<P>)
    return h.promise().get_stop_token();
  else
    return {};
}

template <class P> inline constexpr bool is_task_promise = std::is_base_of_v<promise_base, P>;

/// For an I/O awaiter: the awaiting task's stop token and canceller. Any other
/// coroutine awaits without cancellation; one that has a stop token of its own cannot
/// await an I/O operation directly (wrap the operation in a task: as_task).
template <class P> stop_ref stop_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (is_task_promise<P>) {
    return {h.promise().get_stop_token(), &h.promise().canceller()};
  } else {
    static_assert(!has_stop_token<P>, "a coroutine with a stop token awaits sluice I/O "
                                      "through a task (as_task), whose canceller it needs");
    return {};
  }
}

template <class T> class task_promise : public promise_base {
public:
  task<T> get_return_object() noexcept;
  template <class U> void return_value(U&& v) { value_.template emplace<1>(std::forward<U>(v)); }
  void unhandled_exception() noexcept { value_.template emplace<2>(std::current_exception()); }
  T take() {
    if (value_.index() == 2) std::rethrow_exception(std::get<2>(value_));
    return std::move(std::get<1>(value_));
  }
  bool has_exception() const noexcept { return value_.index() == 2; }
  const T* value_if_any() const noexcept { return std::get_if<1>(&value_); }

private:
  std::variant<std::monostate, T, std::exception_ptr> value_;
};

template <> class task_promise<void> : public promise_base {
public:
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
  void take() {
    if (error_) std::rethrow_exception(error_);
  }
  bool has_exception() const noexcept { return error_ != nullptr; }

private:
  std::exception_ptr error_;
};

} // namespace detail

/// A lazy, move-only coroutine that produces a T (or rethrows into its awaiter). It
/// starts when awaited, under its awaiter's stop token.
template <class T> class [[nodiscard]] task {
public:
  using promise_type = detail::task_promise<T>;            ///< the coroutine's promise
  using handle_type = std::coroutine_handle<promise_type>; ///< its frame
  using value_type = T;                                    ///< what it produces

  /// No coroutine (valid() is false).
  task() = default;
  /// Owns the frame `h` (made by the promise).
  explicit task(handle_type h) noexcept : h_(h) {}
  /// Takes over `o`'s coroutine.
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  /// Destroys its own coroutine, then takes over `o`'s.
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { destroy(); }

  /// True if it owns a coroutine.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  /// \cond INTERNAL
  struct [[nodiscard]] awaiter {
    handle_type h;
    bool await_ready() const noexcept { return false; }
    template <class P> bool await_suspend(std::coroutine_handle<P> parent) {
      h.promise().inherit_stop_token(detail::stop_token_of(parent));
      return h.promise().start_from(h, parent);
    }
    T await_resume() { return h.promise().take(); }
  };
  /// \endcond
  /// Runs the task; yields its value. Precondition: valid(); a task is awaited at most
  /// once.
  awaiter operator co_await() && noexcept { return awaiter{h_}; }
  /// The same, for a task named by an lvalue.
  awaiter operator co_await() & noexcept { return awaiter{h_}; }

  /// For runtime plumbing (spawn, when_all, sync_wait).
  handle_type handle() const noexcept { return h_; }
  /// Gives up the frame (the caller destroys it).
  handle_type release() noexcept { return std::exchange(h_, {}); }

private:
  void destroy() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }
  handle_type h_;
};

namespace detail {
template <class T> struct is_task : std::false_type {};
template <class T> struct is_task<task<T>> : std::true_type {};

template <class T> task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
} // namespace detail

/// co_await this_stop_token() yields the stop token of the running task.
struct [[nodiscard]] this_stop_token {
  stop_token token; ///< set when awaited
  bool await_ready() const noexcept { return false; }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) noexcept {
    token = detail::stop_token_of(h);
    return false;
  }
  stop_token await_resume() noexcept { return token; }
};

/// Runs `t` so that it stops when `token` stops *or* when the token it inherits from
/// its awaiter stops (the two are combined; neither replaces the other).
template <class T> task<T> with_stop_token(task<T> t, stop_token token) {
  const stop_token outer = co_await this_stop_token();
  if (!outer.stop_possible() || !token.stop_possible() || outer == token) {
    t.handle().promise().bind_stop_token(token.stop_possible() ? token : outer);
    co_return co_await std::move(t);
  }
  stop_source combined;
  stop_callback from_outer(outer, detail::forward_stop{&combined});
  stop_callback from_token(token, detail::forward_stop{&combined});
  t.handle().promise().bind_stop_token(combined.get_token());
  co_return co_await std::move(t);
}

namespace detail {
struct forward_std_stop {
  stop_source* target;
  void operator()() const noexcept { target->request_stop(); }
};
} // namespace detail

/// The same for a std::stop_token (forwarded into an in-place source).
template <class T> task<T> with_stop_token(task<T> t, std::stop_token token) {
  stop_source bridged;
  std::stop_callback forward(token, detail::forward_std_stop{&bridged});
  co_return co_await with_stop_token(std::move(t), bridged.get_token());
}

/// Runs `t` under no stop token: the awaiter's token does not reach it. For work that
/// must finish once started (the rest of a request being read during a drain, say);
/// bound it with a deadline instead.
template <class T> task<T> shield(task<T> t) {
  t.handle().promise().bind_stop_token(stop_token());
  return t;
}

/// The same for an awaiter (an I/O operation): it ignores the token of the coroutine
/// that awaits it. No frame, no allocation.
template <class A> class [[nodiscard]] shielded {
public:
  /// Wraps `a`.
  explicit shielded(A a) noexcept(std::is_nothrow_move_constructible_v<A>) : a_(std::move(a)) {}
  bool await_ready() { return a_.await_ready(); }
  /// A type-erased handle carries no stop token.
  auto await_suspend(std::coroutine_handle<> h) { return a_.await_suspend(h); }
  decltype(auto) await_resume() { return a_.await_resume(); }

private:
  A a_;
};
template <class A>
requires(!detail::is_task<A>::value) shielded<A> shield(A a) { return shielded<A>(std::move(a)); }

/// Wraps any awaitable (an I/O operation, say) into a task.
template <class A> auto as_task(A a) -> task<decltype(std::declval<A&>().await_resume())> {
  co_return co_await std::move(a);
}

} // namespace sluice
