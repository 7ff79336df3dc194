// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a pool of
// n threads uses n cores. parallel_for splits [0, n) into contiguous chunks, one per thread.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

namespace hcattn::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: all hardware threads
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const;
  // Runs fn(begin, end, thread_index) over disjoint chunks covering [0, n); returns when all are done.
  // Chunks are aligned to `grain` elements (except the last). thread_index is distinct among the
  // chunks of one call (0 = the calling thread). An exception thrown by fn is rethrown here after all
  // chunks finish; a parallel_for called from inside fn on the same pool runs inline. Calls from
  // several threads at once are serialised.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hcattn::cpu
