// Persistent workers that wait for numbered jobs. A job is published by bumping `generation`; workers
// spin on it for a short while (a decode step issues hundreds of small parallel_for calls a second, and
// a futex wake costs more than the work of a small one) and then sleep on a condition variable, so an
// idle engine uses no CPU. The caller runs chunk 0 itself and then waits for the workers' chunks.
#include "cpu/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define HCATTN_PAUSE() _mm_pause()
#else
#define HCATTN_PAUSE() std::this_thread::yield()
#endif

namespace hcattn::cpu {

namespace {

// How long an idle worker polls before it sleeps: long enough to bridge the gaps between the matmuls
// of a layer (a decode step runs a few hundred parallel_for calls), short enough not to burn a core
// while the engine waits for the user. Measured in time, because a pause instruction lasts from ~10
// to ~140 cycles depending on the core.
constexpr auto kSpinTime = std::chrono::microseconds(100);
// The caller waits for chunks about as long as its own, so it polls briefly and then yields: on an
// oversubscribed machine the worker it waits for may need this very core.
constexpr int kCallerSpinIterations = 2000;
constexpr int kSpinChecksPerClockRead = 64;

// The pool a thread belongs to while it runs a chunk, and its thread index there: a nested
// parallel_for on the same pool runs inline (under the same index, so per-thread scratch buffers
// indexed by it stay private) instead of waiting for workers that are busy running its caller.
thread_local const void* t_running_pool = nullptr;
thread_local int t_running_index = 0;

}  // namespace

struct ThreadPool::Impl {
  int n_threads = 1;
  std::vector<std::thread> workers;

  // The current job, written by the caller before `generation` is bumped (release) and read by the
  // workers after they observe the bump (acquire).
  const ChunkFn* fn = nullptr;
  int64_t n = 0;
  int64_t grain = 1;

  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};  // workers that have not finished the current job
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::mutex sleep_mutex;
  std::condition_variable wake;

  std::mutex caller_mutex;  // one job at a time when several threads share the pool
  std::mutex error_mutex;
  std::exception_ptr error;

  // Chunk `index` of the current job: whole grains split as evenly as possible, in thread order.
  void run_chunk(int index) {
    const int64_t grains = (n + grain - 1) / grain;
    const int64_t g0 = grains * index / n_threads;
    const int64_t g1 = grains * (index + 1) / n_threads;
    const int64_t begin = g0 * grain;
    const int64_t end = std::min(n, g1 * grain);
    if (begin >= end) return;
    const void* outer_pool = t_running_pool;
    const int outer_index = t_running_index;
    t_running_pool = this;
    t_running_index = index;
    try {
      (*fn)(begin, end, index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    t_running_pool = outer_pool;
    t_running_index = outer_index;
  }

  void worker_loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t now = generation.load(std::memory_order_acquire);
      const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
      for (int spin = 1; now == seen; ++spin) {
        HCATTN_PAUSE();
        now = generation.load(std::memory_order_acquire);
        if (spin % kSpinChecksPerClockRead == 0 && std::chrono::steady_clock::now() > deadline) break;
      }
      if (now == seen) {
        std::unique_lock<std::mutex> lock(sleep_mutex);
        sleepers.fetch_add(1, std::memory_order_seq_cst);
        while ((now = generation.load(std::memory_order_seq_cst)) == seen &&
               !stop.load(std::memory_order_acquire)) {
          wake.wait(lock);
        }
        sleepers.fetch_sub(1, std::memory_order_relaxed);
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = now;
      run_chunk(index);
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void publish() {
    // seq_cst pairs with the sleeper's increment-then-check: either the worker sees the new
    // generation before waiting, or this thread sees it asleep and wakes it.
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex); }
      wake.notify_all();
    }
  }

  void wait_workers() {
    int spins = 0;
    while (pending.load(std::memory_order_acquire) != 0) {
      // On an oversubscribed machine the worker may be descheduled; yield instead of burning the
      // time slice it needs.
      if (++spins < kCallerSpinIterations) {
        HCATTN_PAUSE();
      } else {
        std::this_thread::yield();
      }
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  impl_->n_threads = n_threads;
  impl_->workers.reserve(n_threads - 1);
  for (int i = 1; i < n_threads; ++i) impl_->workers.emplace_back([this, i] { impl_->worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  impl_->stop.store(true, std::memory_order_release);
  impl_->publish();
  for (std::thread& t : impl_->workers) t.join();
}

int ThreadPool::size() const { return impl_->n_threads; }

void ThreadPool::run(int64_t n, int64_t grain, ChunkFn fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Impl& p = *impl_;
  if (t_running_pool == &p) {
    fn(0, n, t_running_index);
    return;
  }
  if (p.n_threads == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> caller_lock(p.caller_mutex);
  p.fn = &fn;
  p.n = n;
  p.grain = grain;
  p.error = nullptr;
  p.pending.store(p.n_threads - 1, std::memory_order_relaxed);
  p.publish();
  p.run_chunk(0);
  p.wait_workers();
  p.fn = nullptr;
  if (p.error) std::rethrow_exception(p.error);
}

}  // namespace hcattn::cpu
