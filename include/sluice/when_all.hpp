// when_all and when_any: run tasks concurrently on the current coroutine's thread.
//
//   auto [a, b] = co_await when_all(f(), g());   // every value, in argument order
//   auto first  = co_await when_any(f(), g());   // std::variant; first.index() won
//
// Children run under a stop source of the group, which the awaiting task's token also
// stops. Each child is started inline until it first suspends; the awaiter resumes
// when the last one has finished — nothing is left running behind it.
//
// when_all fails fast: when a child throws or returns a result<...> holding an error,
// the others are cancelled (their stop token fires), and when_all completes once they
// have ended. It then rethrows the first exception (the earliest in time), if any;
// otherwise it yields every child's value, failed results included.
//
// when_any yields the value of the first child to finish (or rethrows its exception)
// and cancels the others; children not started yet when one finished are not started.
//
// For a fixed number of children both allocate nothing: the group lives in the
// awaiting coroutine's frame. The std::vector forms allocate their bookkeeping.
#pragma once

#include <cstddef>
#include <optional>
#include <sluice/error.hpp>
#include <sluice/stop_token.hpp>
#include <sluice/task.hpp>
#include <stdexcept>
#include <tuple>
#include <variant>
#include <vector>

namespace sluice {
namespace detail {

/// Stores a child's outcome: its value (void becomes std::monostate) or its exception.
template <class T> struct outcome {
  using stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
};

inline constexpr std::size_t no_child = static_cast<std::size_t>(-1);

template <class T> bool child_failed(const task_promise<T>& p) noexcept {
  if (p.has_exception()) return true;
  if constexpr (is_result<T>::value) {
    const T* v = p.value_if_any();
    return v != nullptr && !v->has_value();
  } else {
    return false;
  }
}

template <class T> typename outcome<T>::stored take_stored(task<T>& t) {
  if constexpr (std::is_void_v<T>) {
    t.handle().promise().take();
    return {};
  } else {
    return t.handle().promise().take();
  }
}

/// What every group shares: the children's stop source, the count, the parent.
class group_base {
public:
  group_base() = default;
  group_base(group_base&&) noexcept {} // moved only before it is awaited

protected:
  /// Call first in await_suspend.
  void begin(std::coroutine_handle<> parent, const stop_token& outer, std::size_t n) {
    parent_ = parent;
    if (outer.stop_possible()) from_parent_.emplace(outer, forward_stop{&stop_});
    remaining_ = n + 1; ///< + 1 while children are being started
  }
  /// Call last in await_suspend: true if the parent must suspend.
  bool started_all() noexcept { return --remaining_ != 0; }
  /// A child ended; `failed` says whether it counts as the group's trigger.
  std::coroutine_handle<> child_ended(std::size_t index, bool trigger, bool threw) noexcept {
    if (threw && first_exception_ == no_child) first_exception_ = index;
    if (trigger && first_ == no_child) {
      first_ = index;
      stop_.request_stop(); ///< cancels the others; resumes nobody inline
    }
    if (--remaining_ == 0) return parent_;
    return std::noop_coroutine();
  }
  void end() noexcept { from_parent_.reset(); }

  stop_source stop_;
  std::optional<stop_callback<forward_stop>> from_parent_;
  std::coroutine_handle<> parent_;
  std::size_t remaining_ = 0;
  std::size_t first_ = no_child;           ///< first failure (all) / first finisher (any)
  std::size_t first_exception_ = no_child; ///< earliest child that threw
};

template <bool Any, class... T> class fixed_group : public group_base {
public:
  explicit fixed_group(task<T>... t) : tasks_(std::move(t)...) {}
  fixed_group(fixed_group&& o) noexcept : group_base(std::move(o)), tasks_(std::move(o.tasks_)) {}

  bool await_ready() const noexcept { return false; }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    begin(h, stop_token_of(h), sizeof...(T));
    start_each(std::index_sequence_for<T...>{});
    return started_all();
  }

protected:
  template <std::size_t... I> void start_each(std::index_sequence<I...>) {
    (start_child<I>(), ...);
  }
  template <std::size_t I> void start_child() {
    if (Any && first_ != no_child) { // a winner already: never started
      --remaining_;
      return;
    }
    auto& t = std::get<I>(tasks_);
    t.handle().promise().inherit_stop_token(stop_.get_token());
    t.handle().promise().start_with_hook(t.handle(), &child_done<I>, this);
  }
  template <std::size_t I> static std::coroutine_handle<> child_done(void* self) noexcept {
    auto& g = *static_cast<fixed_group*>(self);
    const auto& p = std::get<I>(g.tasks_).handle().promise();
    return g.child_ended(I, Any || child_failed(p), p.has_exception());
  }
  template <std::size_t... I> void rethrow_if(std::size_t index, std::index_sequence<I...>) {
    ((I == index ? (void)take_stored(std::get<I>(tasks_)) : void()), ...);
  }

  std::tuple<task<T>...> tasks_;
};

template <class... T> class when_all_awaiter : public fixed_group<false, T...> {
public:
  using fixed_group<false, T...>::fixed_group;
  std::tuple<typename outcome<T>::stored...> await_resume() {
    this->end();
    if (this->first_exception_ != no_child)
      this->rethrow_if(this->first_exception_, std::index_sequence_for<T...>{});
    return std::apply(
        [](auto&... t) { return std::tuple<typename outcome<T>::stored...>{take_stored(t)...}; },
        this->tasks_);
  }
};

template <class... T> class when_any_awaiter : public fixed_group<true, T...> {
public:
  using fixed_group<true, T...>::fixed_group;
  using value_type = std::variant<typename outcome<T>::stored...>;
  value_type await_resume() {
    this->end();
    std::optional<value_type> v;
    take_winner(v, std::index_sequence_for<T...>{});
    return std::move(*v);
  }

private:
  template <std::size_t... I>
  void take_winner(std::optional<value_type>& v, std::index_sequence<I...>) {
    ((I == this->first_
          ? (void)v.emplace(std::in_place_index<I>, take_stored(std::get<I>(this->tasks_)))
          : void()),
     ...);
  }
};

/// The std::vector forms: one child type, any number of children.
template <bool Any, class T> class dynamic_group : public group_base {
public:
  explicit dynamic_group(std::vector<task<T>> t) : tasks_(std::move(t)) {}
  dynamic_group(dynamic_group&& o) noexcept
      : group_base(std::move(o)), tasks_(std::move(o.tasks_)) {}

  bool await_ready() const noexcept { return tasks_.empty(); }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    begin(h, stop_token_of(h), tasks_.size());
    hooks_.resize(tasks_.size());
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
      if (Any && first_ != no_child) {
        --remaining_;
        continue;
      }
      hooks_[i] = {this, i};
      auto& p = tasks_[i].handle().promise();
      p.inherit_stop_token(stop_.get_token());
      p.start_with_hook(tasks_[i].handle(), &child_done, &hooks_[i]);
    }
    return started_all();
  }

protected:
  struct hook {
    dynamic_group* group;
    std::size_t index;
  };
  static std::coroutine_handle<> child_done(void* arg) noexcept {
    auto& h = *static_cast<hook*>(arg);
    const auto& p = h.group->tasks_[h.index].handle().promise();
    return h.group->child_ended(h.index, Any || child_failed(p), p.has_exception());
  }

  std::vector<task<T>> tasks_;
  std::vector<hook> hooks_;
};

template <class T> class when_all_vector : public dynamic_group<false, T> {
public:
  using dynamic_group<false, T>::dynamic_group;
  std::vector<typename outcome<T>::stored> await_resume() {
    this->end();
    if (this->first_exception_ != no_child) take_stored(this->tasks_[this->first_exception_]);
    std::vector<typename outcome<T>::stored> values;
    values.reserve(this->tasks_.size());
    for (auto& t : this->tasks_)
      values.push_back(take_stored(t));
    return values;
  }
};

/// when_any over a vector: the index of the winner and its value.
template <class T> struct any_result {
  std::size_t index;
  typename outcome<T>::stored value;
};

template <class T> class when_any_vector : public dynamic_group<true, T> {
public:
  using dynamic_group<true, T>::dynamic_group;
  any_result<T> await_resume() {
    this->end();
    if (this->first_ == no_child) throw std::invalid_argument("when_any of no task");
    return {this->first_, take_stored(this->tasks_[this->first_])};
  }
};

} // namespace detail

namespace detail {
/// A task as it is; any other awaitable (an I/O operation, another when_all) in a task.
template <class A>
concept awaitable_arg = is_task<std::remove_cvref_t<A>>::value || requires(A& a) {
  a.await_ready();
  a.await_resume();
};
template <class A> auto into_task(A&& a) {
  if constexpr (is_task<std::remove_cvref_t<A>>::value)
    return std::move(a);
  else
    return as_task(std::move(a));
}
template <class A> using task_value_t = typename decltype(into_task(std::declval<A>()))::value_type;
} // namespace detail

template <detail::awaitable_arg... A>
[[nodiscard]] detail::when_all_awaiter<detail::task_value_t<A>...> when_all(A&&... tasks) {
  return detail::when_all_awaiter<detail::task_value_t<A>...>(
      detail::into_task(std::forward<A>(tasks))...);
}
template <class T> [[nodiscard]] detail::when_all_vector<T> when_all(std::vector<task<T>> tasks) {
  return detail::when_all_vector<T>(std::move(tasks));
}

template <detail::awaitable_arg... A>
requires(sizeof...(A) > 0)
    [[nodiscard]] detail::when_any_awaiter<detail::task_value_t<A>...> when_any(A&&... tasks) {
  return detail::when_any_awaiter<detail::task_value_t<A>...>(
      detail::into_task(std::forward<A>(tasks))...);
}
template <class T> [[nodiscard]] detail::when_any_vector<T> when_any(std::vector<task<T>> tasks) {
  return detail::when_any_vector<T>(std::move(tasks));
}

} // namespace sluice
