// resolve(): getaddrinfo on a process-wide pool of threads, its answer handed back to
// the waiting coroutine's loop. docs/streams.md ("Name resolution") has the design.
//
// A lookup is a `job`, shared by the coroutine that waits for it, the pool thread that
// runs it, and — once the answer is posted — the loop's remote queue. The coroutine
// withdraws `job::io` under the job's mutex before its frame goes (finished,
// cancelled or destroyed); the pool thread posts only while it is set, under the same
// mutex. A frame is destroyed before its io_context is, so the loop a post reaches is
// alive; a post still queued when the loop is destroyed is dropped by it.
#include <sluice/net/resolve.hpp>

#include "../backend/socket_ops.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <sluice/detail/io_awaiter.hpp>
#include <thread>

namespace sluice {
namespace {

struct job;

struct job_node : detail::remote_node {
  job* owner = nullptr;
};

struct job {
  std::string host;
  std::string service;
  int family = 0;

  std::mutex mutex;
  io_context* io = nullptr;    // where to post the answer; null once nobody waits
  std::shared_ptr<job> posted; // the reference the posted node holds
  result<std::vector<endpoint>> answer{errc::operation_aborted, "resolve: no answer"};
  job_node node;

  // Loop thread only.
  bool done = false;        // the answer arrived
  detail::op_queue waiting; // the coroutine, while it waits

  static void arrived(detail::ready_node& n) noexcept {
    job& j = *static_cast<job_node&>(n).owner;
    const auto keep = std::move(j.posted); // may be the last reference: freed at return
    j.done = true;
    if (detail::operation* op = j.waiting.first_waiting()) {
      j.waiting.remove(*op);
      op->error = {};
      op->ctx->defer_completion(*op);
    }
  }
  static void dropped(detail::remote_node& n) noexcept {
    job& j = *static_cast<job_node&>(n).owner;
    const auto keep = std::move(j.posted);
  }
};

// The threads that run lookups: started on demand up to a bound, kept while the
// process lives, joined at exit.
class pool {
public:
  static pool& instance(unsigned max_threads) {
    static pool p(max_threads);
    return p;
  }
  ~pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_)
      t.join();
  }
  void submit(std::shared_ptr<job> j) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(j));
    if (idle_ == 0 && threads_.size() < max_threads_)
      threads_.emplace_back([this] { work(); });
    else
      wake_.notify_one();
  }

private:
  explicit pool(unsigned max_threads) : max_threads_(max_threads ? max_threads : 1) {}

  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return; // stopping
      auto j = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      run(*j, j);
      j.reset();
      lock.lock();
    }
  }

  static void run(job& j, const std::shared_ptr<job>& self) {
    bool wanted;
    {
      std::lock_guard lock(j.mutex);
      wanted = j.io != nullptr;
    }
    // Nobody waits any more (cancelled while queued): skip the lookup.
    auto answer =
        wanted ? detail::sys::lookup(j.host, j.service, j.family)
               : result<std::vector<endpoint>>(errc::operation_aborted, "resolve: abandoned");
    std::lock_guard lock(j.mutex);
    if (j.io == nullptr) return;
    j.answer = std::move(answer);
    j.posted = self;
    j.io->post_remote(j.node);
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<job>> queue_;
  std::vector<std::thread> threads_;
  unsigned max_threads_;
  unsigned idle_ = 0;
  bool stopping_ = false;
};

// Waits (as an operation of the loop: cancellable, deadline-aware) for the answer.
class [[nodiscard]] answer_awaiter : public detail::io_awaiter {
public:
  explicit answer_awaiter(job& j) noexcept : j_(&j) { op_.ctx = j.io; }
  bool await_ready() const noexcept { return j_->done; }
  template <class P> bool await_suspend(std::coroutine_handle<P> h) {
    return start_wait(h, detail::stop_of(h), j_->waiting);
  }
  std::error_code await_resume() noexcept {
    finish();
    return op_.error;
  }

private:
  job* j_;
};

bool family_matches(const endpoint& ep, resolve_options::family_filter f) {
  return f == resolve_options::family_filter::any ||
         (f == resolve_options::family_filter::v4) == ep.is_v4();
}

} // namespace

task<result<std::vector<endpoint>>> resolve(io_context& io, std::string host, std::string service,
                                            resolve_options options) {
  const std::string what = fmt::format("resolve {:.200}:{:.50}", host, service);
  if (host.empty()) co_return error(errc::host_not_found, what + ": the host name is empty");
  if (host.find('\0') != std::string::npos || service.find('\0') != std::string::npos)
    co_return error(errc::invalid_endpoint, what + ": a NUL character in the name");
  // An IP literal and a port number: nothing to look up (endpoint's own parser decides).
  const bool bare_v6 = host.find(':') != std::string::npos && host.front() != '[';
  if (auto ep = endpoint::parse(bare_v6 ? fmt::format("[{}]:{}", host, service)
                                        : fmt::format("{}:{}", host, service))) {
    if (!family_matches(*ep, options.family))
      co_return error(errc::host_not_found, what + ": an address of the other family");
    co_return std::vector<endpoint>{*ep};
  }

  auto j = std::make_shared<job>();
  j->host = std::move(host);
  j->service = std::move(service);
  j->family = options.family == resolve_options::family_filter::v4   ? 4
              : options.family == resolve_options::family_filter::v6 ? 6
                                                                     : 0;
  j->io = &io;
  j->node.owner = j.get();
  j->node.run = &job::arrived;
  j->node.drop = &job::dropped;
  struct withdraw { // runs however this frame ends: no answer is posted after it
    job* j;
    ~withdraw() {
      std::lock_guard lock(j->mutex);
      j->io = nullptr;
    }
  } guard{j.get()};
  pool::instance(options.max_threads).submit(j);

  if (const std::error_code ec = co_await answer_awaiter(*j))
    co_return error(ec, ec == errc::timed_out ? what + ": no answer before the deadline"
                                              : what + ": cancelled while waiting for the answer");
  if (!j->answer)
    co_return error(j->answer.error().code(), what + ": " + j->answer.error().context());
  co_return std::move(j->answer);
}

} // namespace sluice
