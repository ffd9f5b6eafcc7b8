// The event loop: a ready list, the operations in flight, one backend.
// The rules it keeps are in docs/runtime.md ("The operation contract").
#include <sluice/io_context.hpp>

#include "../backend/backend.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fmt/format.h>
#include <fmt/std.h>
#include <mutex>
#include <sluice/detail/accept_queue.hpp>
#include <sluice/detail/operation.hpp>
#include <sluice/detail/receiver.hpp>

#include <sluice/spawn.hpp>

#include <array>
#include <sluice/timer.hpp>
#include <sluice/yield.hpp>
#include <vector>

#ifndef SLUICE_CHECKS
#ifdef NDEBUG
#define SLUICE_CHECKS 0
#else
#define SLUICE_CHECKS 1
#endif
#endif

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

void run_deferred(ready_node& n) noexcept {
  auto& op = static_cast<operation&>(n);
  op.ctx->complete(op);
}
} // namespace

void report_spawn_failure(std::exception_ptr e) noexcept {
  try {
    spawn_handler(e);
  } catch (...) {
    fmt::print(stderr, "sluice: the spawn error handler threw\n");
  }
}

} // namespace detail

spawn_error_handler set_spawn_error_handler(spawn_error_handler h) noexcept {
  return std::exchange(detail::spawn_handler, h ? h : detail::print_spawn_failure);
}

yield_awaiter yield() {
  io_context* io = io_context::current();
  if (io == nullptr) throw std::logic_error("yield() outside a running io_context");
  return yield_awaiter(*io);
}

namespace {

thread_local io_context* current_context = nullptr;

struct {
  std::atomic<std::size_t> queued{0}, not_submitted{0}, in_flight{0}, completed{0};
} abandon_counts;

// The live contexts, for io_context::alive(): a table of slots, each holding the id of
// the context that lives in it (0: free). alive() — called on every close and
// recv_disconnect, from every loop — is one atomic load; only creating and destroying
// a context takes the mutex.
constexpr std::size_t registry_slots = 4096;
std::array<std::atomic<std::uint64_t>, registry_slots> registry{};
std::mutex registry_mutex;
std::uint64_t next_id = 1;

std::uint64_t register_context() {
  std::lock_guard lock(registry_mutex);
  for (std::size_t tries = 0; tries < registry_slots; ++tries) {
    const std::uint64_t id = next_id++;
    auto& slot = registry[id % registry_slots];
    if (slot.load(std::memory_order_relaxed) == 0) {
      slot.store(id, std::memory_order_release);
      return id;
    }
  }
  throw std::runtime_error(
      fmt::format("io_context: more than {} contexts alive at once", registry_slots));
}

void unregister_context(std::uint64_t id) noexcept {
  registry[id % registry_slots].store(0, std::memory_order_release);
}

std::string_view env_backend() {
  const char* v = std::getenv("SLUICE_BACKEND");
  return v ? std::string_view(v) : std::string_view();
}

// Marks this thread as the loop thread for the duration of run().
struct loop_guard {
  io_context* previous;
  std::atomic<std::thread::id>& owner;
  std::thread::id previous_owner;
  loop_guard(io_context* c, std::atomic<std::thread::id>& o)
      : previous(current_context), owner(o), previous_owner(o.load()) {
    current_context = c;
    owner.store(std::this_thread::get_id());
  }
  ~loop_guard() {
    current_context = previous;
    owner.store(previous_owner);
  }
};

void splice(detail::ready_node& from, detail::ready_node& to) noexcept {
  if (from.next == &from) return;
  to.next = from.next;
  to.prev = from.prev;
  to.next->prev = &to;
  to.prev->next = &to;
  from.next = from.prev = &from;
}

void clear(detail::ready_node& list) noexcept {
  while (list.next != &list)
    list.next->unlink();
}

} // namespace

io_context::io_context() : io_context(env_backend()) {}

io_context::io_context(std::string_view name) : io_context(options{name}, false) {}

io_context::io_context(const options& o) : io_context(o, true) {}

io_context::io_context(const options& o, bool read_environment)
    : options_(o), remote_(std::make_unique<detail::remote_queue>()), id_(register_context()) {
  if (options_.backend.empty() && read_environment) options_.backend = env_backend();

  options_.recv_buffers = std::max<std::uint32_t>(options_.recv_buffers, 1);
  options_.max_recv_buffers = std::max(options_.max_recv_buffers, options_.recv_buffers);
  options_.recv_buffer_size = std::max<std::size_t>(options_.recv_buffer_size, 16);
  ready_.next = ready_.prev = &ready_;
  running_.next = running_.prev = &running_;
  const std::string_view name = options_.backend;
  auto b = detail::make_backend(*this, name);
  if (!b) {
    unregister_context(id_);
    throw std::system_error(b.error().code(), b.error().context());
  }
  backend_ = std::move(*b);
  lend_pool_ = &backend_->buffers();
}

io_context::~io_context() {
  unregister_context(id_);
  shutting_down_ = true;
  // 1. Nothing stays in flight: every operation is cancelled and its completion
  //    reaped (not resumed), accepted handles closed.
  backend_->shutdown();
  // 2. Destroying a spawned root destroys the tasks it awaits, recursively; their
  //    awaiters find their operations idle, or withdraw them from queues and lists.
  while (spawn_head_ != nullptr)
    spawn_head_->frame.destroy();
  // 3. Whatever is still queued to run belongs to nobody now; remote work that never
  //    ran releases what it holds.
  clear(running_);
  clear(ready_);
  drop_remote();
  waiting_deadlines_.clear();
}

detail::receiver* io_context::acquire_receiver() {
  if (free_receivers_.empty()) {
    receivers_.push_back(std::make_unique<detail::receiver>(*this));
    free_receivers_.reserve(receivers_.size());
    return receivers_.back().get();
  }
  detail::receiver* r = free_receivers_.back();
  free_receivers_.pop_back();
  return r;
}

void io_context::release_receiver(detail::receiver* r) noexcept { free_receivers_.push_back(r); }

detail::accept_queue* io_context::acquire_accept_queue() {
  if (free_accept_queues_.empty()) {
    accept_queues_.push_back(std::make_unique<detail::accept_queue>(*this));
    free_accept_queues_.reserve(accept_queues_.size());
    return accept_queues_.back().get();
  }
  detail::accept_queue* q = free_accept_queues_.back();
  free_accept_queues_.pop_back();
  return q;
}

void io_context::release_accept_queue(detail::accept_queue* q) noexcept {
  free_accept_queues_.push_back(q);
}

void io_context::park_starved(detail::receiver& r) noexcept {
  r.next_starved = nullptr;
  if (starved_tail_ != nullptr)
    starved_tail_->next_starved = &r;
  else
    starved_ = &r;
  starved_tail_ = &r;
  lend_pool_->set_starving(true); // buffers coming back go through buffers_came_back()
}

void io_context::resume_starved() noexcept {
  if (starved_ == nullptr || shutting_down_ || resuming_starved_) return;
  // As many starved receivers go on as there are buffers free: one buffer per waiting
  // receiver would leave some parked while free buffers sit in the pool (a receive
  // needs one even to report the end of the stream).
  resuming_starved_ = true;
  for (std::uint32_t n = backend_->buffers().free_count(); n != 0 && starved_ != nullptr; --n) {
    detail::receiver* r = starved_;
    starved_ = r->next_starved;
    if (starved_ == nullptr) {
      starved_tail_ = nullptr;
      lend_pool_->set_starving(false);
    }
    r->resume_after_starving();
  }
  resuming_starved_ = false;
}

void detail::cancel_operation(operation& op) noexcept { op.ctx->cancel(op); }

void io_context::check_loop_thread(const char* what) const noexcept {
#if SLUICE_CHECKS
  const std::thread::id t = loop_thread_.load(std::memory_order_relaxed);
  if (t == std::thread::id() || t == std::this_thread::get_id()) return;
  fmt::print(stderr,
             "sluice: {} called on thread {}, but this io_context's loop runs on thread {}; "
             "hand work to the loop with post_remote()\n",
             what, std::this_thread::get_id(), t);
  std::fflush(stderr);
  std::abort();
#else
  (void)what;
#endif
}

bool io_context::loop_thread_checks() noexcept { return SLUICE_CHECKS != 0; }

void io_context::on_spawn(detail::spawn_link& l) noexcept {
  check_loop_thread("spawn()");
  l.prev = nullptr;
  l.next = spawn_head_;
  if (spawn_head_ != nullptr) spawn_head_->prev = &l;
  spawn_head_ = &l;
  ++spawned_;
}

void io_context::on_spawn_done(detail::spawn_link& l) noexcept {
  if (l.prev != nullptr)
    l.prev->next = l.next;
  else if (spawn_head_ == &l)
    spawn_head_ = l.next;
  else
    return; // not linked
  if (l.next != nullptr) l.next->prev = l.prev;
  l.prev = l.next = nullptr;
  --spawned_;
}

bool io_context::alive(std::uint64_t id) noexcept {
  return registry[id % registry_slots].load(std::memory_order_acquire) == id;
}

std::string_view io_context::backend_name() const noexcept { return backend_->name(); }

io_context::stats_t io_context::stats() const noexcept {
  const detail::recv_pool& pool = backend_->buffers();
  return {in_flight_, spawned_, pool.count() - pool.free_count(), pool.count()};
}

std::string io_context::backend_description() const { return backend_->description(); }

io_context* io_context::current() noexcept { return current_context; }

void io_context::post(detail::ready_node& n) noexcept {
  check_loop_thread("a resumption (spawn, notify, yield)");
  if (n.linked()) return;
  n.prev = ready_.prev;
  n.next = &ready_;
  ready_.prev->next = &n;
  ready_.prev = &n;
}

void io_context::post_remote(detail::remote_node& n) noexcept {
  n.remote_next.store(nullptr, std::memory_order_relaxed);
  detail::remote_node* prev = remote_tail_.exchange(&n, std::memory_order_acq_rel);
  prev->remote_next.store(&n, std::memory_order_release);
  // Either the loop sees this node before it blocks, or this sees the loop asleep (the
  // two fences order each side's store before its load): then one producer wakes it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed) &&
      sleeping_.exchange(false, std::memory_order_acq_rel)) {
    // From another loop: through that loop's own ring where it can (MSG_RING).
    io_context* from = current_context;
    if (from == nullptr || from == this || !from->backend_->wake_other(*backend_)) backend_->wake();
  }
}

bool io_context::take_remote() noexcept {
  bool any = false;
  for (;;) {
    detail::remote_node* head = remote_head_;
    detail::remote_node* next = head->remote_next.load(std::memory_order_acquire);
    if (head == &remote_stub_) {
      if (next == nullptr) return any; // empty
      remote_head_ = head = next;
      next = next->remote_next.load(std::memory_order_acquire);
    }
    if (next == nullptr) { // `head` is the last node, or a push after it is half done
      if (remote_tail_.load(std::memory_order_acquire) != head) return any; // next turn
      remote_stub_.remote_next.store(nullptr, std::memory_order_relaxed);
      detail::remote_node* prev = remote_tail_.exchange(&remote_stub_, std::memory_order_acq_rel);
      prev->remote_next.store(&remote_stub_, std::memory_order_release);
      next = head->remote_next.load(std::memory_order_acquire);
      if (next == nullptr) return any; // a producer is between its two steps
    }
    remote_head_ = next;
    post(*head); // runs this turn (it is taken before the ready list is)
    any = true;
  }
}

void io_context::drop_remote() noexcept {
  for (detail::remote_node* n = remote_head_; n != nullptr;) { // no producer is left
    detail::remote_node* next = n->remote_next.load(std::memory_order_acquire);
    if (n != &remote_stub_ && n->drop != nullptr) n->drop(*n); // may free n
    n = next;
  }
  remote_stub_.remote_next.store(nullptr, std::memory_order_relaxed);
  remote_tail_.store(&remote_stub_, std::memory_order_relaxed);
  remote_head_ = &remote_stub_;
}

bool io_context::remote_empty() const noexcept {
  return remote_head_ == &remote_stub_ &&
         remote_stub_.remote_next.load(std::memory_order_acquire) == nullptr &&
         remote_tail_.load(std::memory_order_acquire) == &remote_stub_;
}

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
  check_loop_thread("an I/O operation");
  if (shutting_down_ || op.cancel_requested || op.code == detail::op_code::none) return refuse(op);
  op.state = detail::op_state::pending;
  if (op.background) ++background_;
  if (list_in_flight_) {
    op.inflight_next = inflight_;
    op.inflight_pprev = &inflight_;
    if (inflight_ != nullptr) inflight_->inflight_pprev = &op.inflight_next;
    inflight_ = &op;
  }
  ++in_flight_;
  backend_->submit(op);
}

// What submit() does not start (apart: the usual submission saves fewer registers).
void io_context::refuse(detail::operation& op) noexcept {
  if (shutting_down_) { // its frame is about to be destroyed: start nothing
    op.error = make_error_code(errc::operation_aborted);
    return;
  }
  op.res = 0;
  op.error = op.cancel_requested
                 ? make_error_code(errc::operation_aborted) // a cancel that found nothing in flight
                 : std::make_error_code(std::errc::invalid_argument); // op_code::none: no OS call
  defer_completion(op);
}

// complete() while the context is destroyed: the frame is about to be destroyed, not
// resumed; what the completion carries is released.
void io_context::complete_shutting_down(detail::operation& op) noexcept {
  backend_->discard(op); // (op is settled already: complete() settles first)
}

void io_context::defer_completion(detail::operation& op) noexcept {
  if (op.state == detail::op_state::pending) unlink_inflight(op);
  op.state = detail::op_state::ready;
  op.run = &detail::run_deferred;
  post(op);
}

void io_context::cancel(detail::operation& op) noexcept {
  if (current_context == this) {
    switch (op.state) {
    case detail::op_state::idle: op.cancel_requested = true; break;
    case detail::op_state::queued:
      op.queue->remove(op);
      op.res = 0;
      op.error = make_error_code(errc::operation_aborted);
      defer_completion(op);
      break;
    case detail::op_state::pending:
      op.cancel_requested = true;
      backend_->cancel(op);
      break;
    case detail::op_state::ready: break; // its outcome is decided
    }
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

io_context::abandon_stats io_context::abandoned() noexcept {
  return {abandon_counts.queued.load(), abandon_counts.not_submitted.load(),
          abandon_counts.in_flight.load(), abandon_counts.completed.load()};
}

void io_context::backend_discard(detail::operation& op) noexcept { backend_->discard(op); }

void io_context::abandon(detail::operation& op) noexcept {
  check_loop_thread("destroying a coroutine with an operation in progress");
  const auto aborted = [&] {
    op.res = 0;
    op.error = make_error_code(errc::operation_aborted);
  };
  switch (op.state) {
  case detail::op_state::idle: break;
  case detail::op_state::queued:
    if (op.queue != nullptr) op.queue->remove(op);
    aborted();
    abandon_counts.queued.fetch_add(1, std::memory_order_relaxed);
    break;
  case detail::op_state::pending:
    // Cancelled and reaped: nothing refers to op any more.
    switch (backend_->abandon(op)) {
    case detail::abandoned_at::not_submitted:
      aborted();
      abandon_counts.not_submitted.fetch_add(1, std::memory_order_relaxed);
      break;
    case detail::abandoned_at::in_flight:
      aborted();
      abandon_counts.in_flight.fetch_add(1, std::memory_order_relaxed);
      break;
    case detail::abandoned_at::completed: // its result is in op.res / op.error
      abandon_counts.completed.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    unlink_inflight(op);
    break;
  case detail::op_state::ready: // completed; its result is in op.res / op.error
    op.unlink();
    abandon_counts.completed.fetch_add(1, std::memory_order_relaxed);
    break;
  }
  op.state = detail::op_state::idle;
  if (op.queue != nullptr) { // it held its stream's sender queue: the next one starts
    if (detail::operation* next = op.queue->leave(op)) submit(*next);
  }
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
    cancel(*op);
  for (auto& fn : fns)
    fn();
}

bool io_context::has_work() const noexcept {
  return ready_.next != &ready_ || in_flight_ != background_ || queued_ != 0 || spawned_ != 0;
}

void io_context::turn(const bool* done) {
  // Run what was ready when the turn began; what becomes ready meanwhile waits for
  // the next turn, so that I/O completions are not starved.
  budget_ = turn_budget;
  // (The two tests inline: on most turns there is neither a deadline nor remote work.)
  if (!waiting_deadlines_.empty()) expire_waiting_deadlines();
  if (remote_head_ != &remote_stub_ ||
      remote_stub_.remote_next.load(std::memory_order_acquire) != nullptr)
    take_remote();
  splice(ready_, running_);
  while (running_.next != &running_) {
    detail::ready_node* n = running_.next;
    n->unlink();
    n->run(*n);
  }
  if (stopped()) return;
  if (done != nullptr ? *done : !has_work()) return;
  // Block only when nothing is ready: then the next event must come from the OS (or
  // from another thread through wake()). Completions get a budget of their own.
  budget_ = turn_budget;
  bool block = ready_.next == &ready_;
  if (block) {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst); // see post_remote(remote_node&)
    if (!remote_empty()) {
      sleeping_.store(false, std::memory_order_relaxed);
      block = false;
    }
  }
  backend_->poll(block, waiting_deadlines_.empty() ? 0 : waiting_deadlines_.earliest());
  if (block) sleeping_.store(false, std::memory_order_relaxed);
}

void io_context::run() {
  loop_guard guard(this, loop_thread_);
  while (!stopped() && has_work())
    turn(nullptr);
}

void io_context::run_until(const bool& done) {
  loop_guard guard(this, loop_thread_);
  while (!done && !stopped())
    turn(&done);
}

} // namespace sluice
