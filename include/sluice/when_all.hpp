// when_all: run tasks concurrently on the current coroutine's thread and wait for all.
//
// Each child inherits the awaiting task's stop token. Children are started one after
// another (each runs inline until it first suspends); the parent resumes when the last
// one finishes. Exceptions: the first child exception (in argument order) is rethrown
// after every child has finished.
#pragma once

#include <cstddef>
#include <sluice/task.hpp>
#include <tuple>
#include <vector>

namespace sluice {
namespace detail {

struct join_counter {
  std::size_t remaining = 0;
  std::coroutine_handle<> parent;
};

// A minimal coroutine that runs one child and signals the counter when done.
class join_task {
public:
  struct promise_type {
    join_counter* counter = nullptr;
    std::stop_token token;
    join_task get_return_object() noexcept {
      return join_task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        join_counter* c = h.promise().counter;
        if (--c->remaining == 0) return c->parent;
        return std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); } // children are wrapped
    const std::stop_token& stop_token() const noexcept { return token; }
  };

  explicit join_task(std::coroutine_handle<promise_type> h) : h_(h) {}
  join_task(join_task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  ~join_task() {
    if (h_) h_.destroy();
  }
  void start(join_counter& c, const std::stop_token& t) {
    h_.promise().counter = &c;
    h_.promise().token = t;
    h_.resume();
  }

private:
  std::coroutine_handle<promise_type> h_;
};

// Stores a child's outcome: its value (void becomes std::monostate) or its exception.
template <class T> struct outcome {
  using stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  std::variant<std::monostate, stored, std::exception_ptr> v;
  stored take() {
    if (v.index() == 2) std::rethrow_exception(std::get<2>(v));
    return std::move(std::get<1>(v));
  }
};

template <class T> join_task run_child(task<T> t, outcome<T>& out) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      out.v.template emplace<1>();
    } else {
      out.v.template emplace<1>(co_await std::move(t));
    }
  } catch (...) {
    out.v.template emplace<2>(std::current_exception());
  }
}

// Starts every join_task; true if the parent must suspend.
inline bool start_all(join_counter& c, std::vector<join_task>& children,
                      std::coroutine_handle<> parent, const std::stop_token& token) {
  c.parent = parent;
  c.remaining = children.size() + 1;
  for (auto& ch : children)
    ch.start(c, token);
  return --c.remaining != 0;
}

// Awaiting it starts every child and resumes the parent when the last one finished.
struct join_awaiter {
  join_counter c;
  std::vector<join_task>& children;
  bool await_ready() noexcept { return false; }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return start_all(c, children, h, stop_token_of(h));
  }
  void await_resume() noexcept {}
};

} // namespace detail

template <class... T>
task<std::tuple<typename detail::outcome<T>::stored...>> when_all(task<T>... tasks) {
  std::tuple<detail::outcome<T>...> outs;
  {
    std::vector<detail::join_task> children;
    children.reserve(sizeof...(T));
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (children.push_back(detail::run_child(std::move(tasks), std::get<I>(outs))), ...);
    }
    (std::index_sequence_for<T...>{});

    co_await detail::join_awaiter{{}, children};
  }
  co_return std::apply([](auto&... o) { return std::tuple{o.take()...}; }, outs);
}

template <class T>
task<std::vector<typename detail::outcome<T>::stored>> when_all(std::vector<task<T>> tasks) {
  std::vector<detail::outcome<T>> outs(tasks.size());
  {
    std::vector<detail::join_task> children;
    children.reserve(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i)
      children.push_back(detail::run_child(std::move(tasks[i]), outs[i]));
    co_await detail::join_awaiter{{}, children};
  }
  std::vector<typename detail::outcome<T>::stored> values;
  values.reserve(outs.size());
  for (auto& o : outs)
    values.push_back(o.take());
  co_return values;
}

} // namespace sluice
