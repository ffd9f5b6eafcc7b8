#include <sluice/io_context.hpp>

#include "../backend/backend.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fmt/format.h>
#include <mutex>
#include <sluice/detail/operation.hpp>
#include <sluice/spawn.hpp>
#include <sluice/timer.hpp>
#include <unordered_set>
#include <vector>

namespace sluice {

namespace detail {

// Work handed to the loop from other threads.
struct remote_queue {
  std::mutex mutex;
  std::vector<std::function<void()>> functions;
  std::vector<operation*> cancels;
  std::atomic<bool> stop{false};
};

namespace {
void print_spawn_failure(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    fmt::print(stderr, "sluice: a spawned task ended with an exception: {}\n", ex.what());
  } catch (...) {
    fmt::print(stderr, "sluice: a spawned task ended with an exception of unknown type\n");
  }
}
spawn_error_handler spawn_handler = print_spawn_failure;
} // namespace

void report_spawn_failure(std::exception_ptr e) noexcept {
  try {
    spawn_handler(e);
  } catch (...) {
    fmt::print(stderr, "sluice: the spawn error handler threw\n");
  }
}

task<void> deadline_timer(std::chrono::nanoseconds d, deadline_state& s) {
  auto r = co_await with_stop_token(as_task(sleep_for(d)), s.timer_stop.get_token());
  if (r) {
    s.expired = true;
    s.body_stop.request_stop();
  }
}

std::string deadline_message(std::chrono::nanoseconds d) {
  return fmt::format("deadline of {} ms expired",
                     std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

} // namespace detail

spawn_error_handler set_spawn_error_handler(spawn_error_handler h) noexcept {
  return std::exchange(detail::spawn_handler, h ? h : detail::print_spawn_failure);
}

sleep_awaiter sleep_for(std::chrono::nanoseconds d) {
  io_context* io = io_context::current();
  if (io == nullptr) throw std::logic_error("sleep_for(duration) outside a running io_context");
  return sleep_awaiter(*io, d);
}

namespace {

thread_local io_context* current_context = nullptr;

std::mutex registry_mutex;
std::unordered_set<std::uint64_t> live_contexts;
std::uint64_t next_id = 1;

std::uint64_t register_context() {
  std::lock_guard lock(registry_mutex);
  const std::uint64_t id = next_id++;
  live_contexts.insert(id);
  return id;
}

std::string_view env_backend() {
  const char* v = std::getenv("SLUICE_BACKEND");
  return v ? std::string_view(v) : std::string_view();
}

struct current_guard {
  io_context* previous;
  explicit current_guard(io_context* c) : previous(current_context) { current_context = c; }
  ~current_guard() { current_context = previous; }
};

} // namespace

io_context::io_context() : io_context(env_backend()) {}

io_context::io_context(std::string_view name)
    : remote_(std::make_unique<detail::remote_queue>()), id_(register_context()) {
  auto b = detail::make_backend(*this, name);
  if (!b) {
    {
      std::lock_guard lock(registry_mutex);
      live_contexts.erase(id_);
    }
    throw std::system_error(b.error().code(), b.error().context());
  }
  backend_ = std::move(*b);
}

io_context::~io_context() {
  {
    std::lock_guard lock(registry_mutex);
    live_contexts.erase(id_);
  }
  shutting_down_ = true;
  backend_->shutdown();
  // Destroying a spawned root frame destroys the tasks it awaits, recursively.
  while (spawn_head_ != nullptr) {
    detail::spawn_link* l = spawn_head_;
    on_spawn_done(*l);
    l->frame.destroy();
  }
  ready_.clear();
}

void io_context::on_spawn(detail::spawn_link& l) noexcept {
  l.prev = nullptr;
  l.next = spawn_head_;
  if (spawn_head_ != nullptr) spawn_head_->prev = &l;
  spawn_head_ = &l;
  ++spawned_;
}

void io_context::on_spawn_done(detail::spawn_link& l) noexcept {
  if (l.prev != nullptr)
    l.prev->next = l.next;
  else
    spawn_head_ = l.next;
  if (l.next != nullptr) l.next->prev = l.prev;
  l.prev = l.next = nullptr;
  --spawned_;
}

bool io_context::alive(std::uint64_t id) noexcept {
  std::lock_guard lock(registry_mutex);
  return live_contexts.count(id) != 0;
}

std::string_view io_context::backend_name() const noexcept { return backend_->name(); }

io_context* io_context::current() noexcept { return current_context; }

void io_context::post(std::coroutine_handle<> h) { ready_.push_back(h); }

void io_context::post_remote(std::function<void()> fn) {
  {
    std::lock_guard lock(remote_->mutex);
    remote_->functions.push_back(std::move(fn));
  }
  backend_->wake();
}

void io_context::stop() noexcept {
  remote_->stop.store(true);
  backend_->wake();
}

bool io_context::stopped() const noexcept { return remote_->stop.load(); }

void io_context::restart() noexcept { remote_->stop.store(false); }

void io_context::submit(detail::operation& op) {
  op.pending = true;
  ++in_flight_;
  backend_->submit(op);
}

void io_context::complete(detail::operation& op) noexcept {
  op.pending = false;
  --in_flight_;
  if (shutting_down_) return; // the frame is about to be destroyed, not resumed
  if (op.on_complete != nullptr)
    op.on_complete(op); // may resubmit op, or resume the waiter itself
  else
    op.waiter.resume();
}

void io_context::cancel(detail::operation& op) noexcept {
  if (current_context == this) {
    if (op.pending) backend_->cancel(op);
    return;
  }
  // Another thread: hand the request to the loop. The operation stays alive until its
  // awaiter's stop_callback is destroyed, which waits for us to return.
  {
    std::lock_guard lock(remote_->mutex);
    remote_->cancels.push_back(&op);
    op.cancel_posted = true;
  }
  backend_->wake();
}

void io_context::retire_cancel(detail::operation& op) noexcept {
  std::lock_guard lock(remote_->mutex);
  auto& v = remote_->cancels;
  v.erase(std::remove(v.begin(), v.end(), &op), v.end());
  op.cancel_posted = false;
}

void io_context::run_remote() noexcept {
  if (shutting_down_) return;
  std::vector<std::function<void()>> fns;
  std::vector<detail::operation*> cancels;
  {
    std::lock_guard lock(remote_->mutex);
    fns.swap(remote_->functions);
    cancels.swap(remote_->cancels);
    for (auto* op : cancels)
      op->cancel_posted = false;
  }
  for (auto* op : cancels)
    if (op->pending) backend_->cancel(*op);
  for (auto& fn : fns)
    fn();
}

bool io_context::has_work() const noexcept {
  return !ready_.empty() || in_flight_ != 0 || spawned_ != 0;
}

void io_context::turn(const bool* done) {
  // Resume what is ready; coroutines made ready meanwhile wait for the next turn so
  // that I/O completions are not starved.
  for (std::size_t n = ready_.size(); n != 0 && !ready_.empty(); --n) {
    auto h = ready_.front();
    ready_.pop_front();
    h.resume();
  }
  if (stopped()) return;
  if (done != nullptr ? *done : !has_work()) return;
  // Block only when nothing is ready: then the next event must come from the OS (or
  // from another thread through wake()).
  backend_->poll(ready_.empty());
}

void io_context::run() {
  current_guard guard(this);
  while (!stopped() && has_work())
    turn(nullptr);
}

void io_context::run_until(const bool& done) {
  current_guard guard(this);
  while (!done && !stopped())
    turn(&done);
}

} // namespace sluice
