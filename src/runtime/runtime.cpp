// The multi-loop runtime, spawn_on's shared state: include/sluice/runtime.hpp.
#include <sluice/runtime.hpp>

#include "../backend/backend.hpp"

#include <sluice/sync_wait.hpp>

namespace sluice {

namespace detail {

join_base::join_base() noexcept {
  start.owner = this;
  start.run = &run_start;
  start.drop = &drop_start;
  resume.owner = this;
  resume.run = &run_resume;
  resume.drop = &drop_resume;
}

void join_base::run_start(ready_node& n) noexcept { static_cast<node&>(n).owner->begin(); }

// Its loop was destroyed before the task could start.
void join_base::drop_start(remote_node& n) noexcept {
  join_base* s = static_cast<node&>(n).owner;
  s->error = std::make_exception_ptr(
      std::system_error(make_error_code(errc::operation_aborted),
                        "spawn_on: the task's io_context was destroyed before it started"));
  s->finish();
}

void join_base::finish() noexcept {
  // Publishes value / error (release); reads the waiter's registration (acquire).
  if (phase.exchange(2, std::memory_order_acq_rel) == 1) {
    refs.fetch_add(1, std::memory_order_relaxed); // the resumption's share
    waiter_io->post_remote(resume);
  }
  release();
}

bool join_base::wait(std::coroutine_handle<> h, io_context& io) noexcept {
  waiter = h;
  waiter_io = &io;
  std::uint8_t expected = 0;
  return phase.compare_exchange_strong(expected, 1, std::memory_order_acq_rel);
}

void join_base::withdraw() noexcept {
  std::uint8_t expected = 1;
  if (phase.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
  // The task finished: its resumption is posted (or being posted) to this thread's
  // loop, where it will find this flag.
  withdrawn.store(true, std::memory_order_release);
}

void join_base::run_resume(ready_node& n) noexcept {
  join_base* s = static_cast<node&>(n).owner;
  if (!s->withdrawn.load(std::memory_order_acquire)) s->waiter.resume();
  s->release();
}

void join_base::drop_resume(remote_node& n) noexcept { static_cast<node&>(n).owner->release(); }

} // namespace detail

namespace {
runtime::options with_threads(unsigned threads) {
  runtime::options o;
  o.threads = threads;
  return o;
}
} // namespace

runtime::runtime(unsigned threads) : runtime(with_threads(threads)) {}

runtime::runtime(const options& o) : options_(o), cpus_(allowed_cpus()) {
  if (options_.threads == 0)
    options_.threads = static_cast<unsigned>(std::max<std::size_t>(cpus_.size(), 1));
  loops_.reserve(options_.threads);
  for (unsigned i = 0; i < options_.threads; ++i)
    loops_.push_back(std::make_unique<io_context>(options_.loop));
}

runtime::~runtime() {
  // Work queued from one loop to another refers to the frames and states of both:
  // release it while every loop is still alive, then destroy the loops.
  for (auto& l : loops_)
    l->drop_remote();
  while (!loops_.empty())
    loops_.pop_back();
}

void runtime::stop() noexcept {
  for (auto& l : loops_)
    l->stop();
}

namespace {
// Runs one loop's task and reports how it ended; the last to finish stops every loop.
task<void> guarded(task<void> body, std::exception_ptr& error, std::atomic<std::size_t>& left,
                   runtime& rt) {
  try {
    co_await std::move(body);
  } catch (...) {
    error = std::current_exception();
  }
  if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) rt.stop();
}
} // namespace

void runtime::run(std::function<task<void>(io_context&, std::size_t)> fn) {
  const std::size_t n = loops_.size();
  std::vector<std::exception_ptr> errors(n);
  std::atomic<std::size_t> left{n};
  auto drive = [&](std::size_t i) {
    if (options_.pin && !cpus_.empty()) detail::pin_thread(cpus_[i % cpus_.size()]);
    io_context& io = *loops_[i];
    try {
      spawn(io, guarded(fn(io, i), errors[i], left, *this));
    } catch (...) { // fn itself threw: this loop has nothing to run, but serves the others
      errors[i] = std::current_exception();
      if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) stop();
    }
    bool never = false;
    io.run_until(never); // until stop(): the loops serve each other until all are done
    io.restart();
  };
  std::vector<std::thread> threads;
  threads.reserve(n - 1);
  try {
    for (std::size_t i = 1; i < n; ++i)
      threads.emplace_back(drive, i);
  } catch (...) {
    stop();
    for (auto& t : threads)
      t.join();
    throw;
  }
  drive(0);
  for (auto& t : threads)
    t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<int> runtime::allowed_cpus() { return detail::allowed_cpus(); }

} // namespace sluice
