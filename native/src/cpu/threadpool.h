// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a pool of
// n threads uses n cores. parallel_for splits [0, n) into contiguous chunks, one per thread.
#pragma once
#include <cstdint>
#include <memory>
#include <type_traits>

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
  // several threads at once are serialised. fn is called by reference: a dispatch allocates nothing.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    run(n, grain, ChunkFn(fn));
  }

  // A non-owning reference to the chunk function of one parallel_for (a decode step dispatches
  // hundreds of jobs a second; a std::function would allocate for most lambdas).
  class ChunkFn {
   public:
    template <class F>
    explicit ChunkFn(F& fn) : fn_(const_cast<void*>(static_cast<const void*>(&fn))), call_(&invoke<F>) {}
    void operator()(int64_t begin, int64_t end, int thread) const { call_(fn_, begin, end, thread); }

   private:
    template <class F>
    static void invoke(void* fn, int64_t begin, int64_t end, int thread) {
      (*static_cast<F*>(fn))(begin, end, thread);
    }
    void* fn_;
    void (*call_)(void*, int64_t, int64_t, int);
  };

 private:
  void run(int64_t n, int64_t grain, ChunkFn fn);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hcattn::cpu
