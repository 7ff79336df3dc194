// ThreadPool: every index is covered exactly once, chunks start on grain boundaries, thread indices
// are distinct within a call, the workers are the same threads across calls, exceptions reach the
// caller, nested calls run inline, and dispatch is cheap enough for per-matmul use and allocates nothing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cpu/threadpool.h"
#include "test_util.h"

using hcattn::cpu::ThreadPool;

// Every heap allocation of this process, counted: a dispatch must not allocate (a decode step makes
// hundreds of them per token).
static std::atomic<long> g_allocations{0};
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// The 1-minute load average, or 0 where /proc is not available.
double load_average() {
  std::ifstream f("/proc/loadavg");
  double load = 0;
  f >> load;
  return load;
}

void check_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::mutex m;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::set<int> indices;
  bool index_reused = false;
  pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int thread) {
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    std::lock_guard<std::mutex> lock(m);
    chunks.emplace_back(b, e);
    if (!indices.insert(thread).second) index_reused = true;
    if (thread < 0 || thread >= pool.size()) index_reused = true;
  });
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  CHECK(once);
  CHECK(!index_reused);
  CHECK(static_cast<int>(chunks.size()) <= pool.size());
  bool aligned = true;
  for (auto& c : chunks) aligned = aligned && c.first % grain == 0 && (c.second % grain == 0 || c.second == n);
  CHECK(aligned);
}

}  // namespace

int main() {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    CHECK(pool.size() == threads);
    for (int64_t n : {1, 2, 7, 16, 100, 1000, 4097}) {
      for (int64_t grain : {1, 4, 16, 64}) check_cover(pool, n, grain);
    }
  }
  ThreadPool all(0);
  CHECK(all.size() == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  ThreadPool pool(3);
  // Persistent workers: over many calls only the caller and the two workers ever run chunks.
  {
    std::mutex m;
    std::set<std::thread::id> seen;
    for (int call = 0; call < 200; ++call) {
      pool.parallel_for(300, 1, [&](int64_t, int64_t, int) {
        std::lock_guard<std::mutex> lock(m);
        seen.insert(std::this_thread::get_id());
      });
    }
    CHECK(seen.size() == 3);
    CHECK(seen.count(std::this_thread::get_id()) == 1);
  }
  // An exception in a chunk reaches the caller, and the pool still works afterwards.
  {
    bool caught = false;
    try {
      pool.parallel_for(90, 1, [&](int64_t b, int64_t, int) {
        if (b > 0) throw std::runtime_error("chunk failed");
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "chunk failed";
    }
    CHECK(caught);
    check_cover(pool, 1000, 8);
  }
  // A nested call on the same pool runs inline under the outer chunk's thread index.
  {
    std::atomic<int64_t> total{0};
    std::atomic<bool> same_index{true};
    pool.parallel_for(3, 1, [&](int64_t, int64_t, int outer) {
      pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int inner) {
        total += e - b;
        if (inner != outer) same_index = false;
      });
    });
    CHECK(total.load() == 30);
    CHECK(same_index.load());
  }
  // Two threads sharing the pool: their calls are serialised and each sees all of its own indices.
  {
    std::atomic<int> good{0};
    auto user = [&](int64_t n) {
      for (int call = 0; call < 200; ++call) {
        std::vector<int> hits(static_cast<size_t>(n), 0);
        pool.parallel_for(n, 3, [&](int64_t b, int64_t e, int) {
          for (int64_t i = b; i < e; ++i) ++hits[i];
        });
        if (std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; })) ++good;
      }
    };
    std::thread other(user, 301);
    user(97);
    other.join();
    CHECK(good.load() == 400);
  }
  // Dispatch latency: tiny jobs back to back (a decode step issues several hundred per token).
  {
    ThreadPool two(2);
    std::atomic<int64_t> sum{0};
    const int calls = 20000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) {
      two.parallel_for(64, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
    }
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / calls;
    std::printf("dispatch: %.2f us per parallel_for with 2 threads\n", us);
    CHECK(sum.load() == 64LL * calls);
    // A latency bound only means something when the pool's threads get cores: with more runnable
    // threads than cores every dispatch waits for the scheduler.
    const double load = load_average();
    if (load < 0.75 * std::thread::hardware_concurrency()) {
      CHECK(us < 50.0);
    } else {
      std::printf("dispatch latency bound not checked: load average %.1f on %u cores\n", load,
                  std::thread::hardware_concurrency());
    }
  }
  // No allocation per dispatch, even for a lambda whose captures exceed std::function's inline buffer.
  {
    int64_t a = 1, b = 2, c = 3, d = 4;
    std::atomic<int64_t> sum{0};
    auto body = [&a, &b, &c, &d, &sum](int64_t begin, int64_t end, int) { sum += (end - begin) * (a + b + c + d); };
    pool.parallel_for(100, 1, body);  // warm-up: first-use allocations of the standard library
    const long before = g_allocations.load();
    for (int i = 0; i < 1000; ++i) pool.parallel_for(100, 1, body);
    const long after = g_allocations.load();
    std::printf("allocations in 1000 dispatches: %ld\n", after - before);
    CHECK(after == before);
    CHECK(sum.load() == 1001 * 100 * 10);
  }
  // After sleeping (past the spin window) the workers still wake for new work.
  {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    check_cover(pool, 500, 5);
  }
  return test_summary("threadpool");
}
