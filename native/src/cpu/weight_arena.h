// Weight matrices copied out of the model file's mapping into anonymous memory on transparent huge
// pages. Decode reads every weight once per token, so its speed is the rate the weights can be read
// at, and that depends on the pages they sit in: measured on this project's 2-core Zen 4 machine with
// 2 threads streaming 1 GB (interleaved runs, medians), 2 MB anonymous pages 29 GB/s, 4 KB anonymous
// pages 24.7 GB/s, the file's page-cache pages 22 GB/s (a TLB miss every 4 KB, and the hardware
// prefetcher stops at every 4 KB boundary). The copy costs CPU time at load, mostly the kernel
// clearing fresh huge pages (in that VM 2.45 s per GB against 0.7 s into 4 KB pages), spread over all
// cores; peak resident memory stays the model's size because each source range is dropped from this
// process's resident set once copied (the page cache keeps it for the next load).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/matmul.h"

namespace hcattn::cpu {

class WeightArena {
 public:
  // Reserves `bytes` of address space (backed on first touch). When the system has no memory to give,
  // ok() is false and adopt() leaves the weights where they are.
  explicit WeightArena(size_t bytes);
  ~WeightArena();
  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  bool ok() const { return base_ != nullptr; }
  // Whether the kernel agreed to back the arena with huge pages (madvise; THP "madvise" or "always").
  bool huge_pages() const { return huge_pages_; }
  size_t used() const { return used_; }

  // Copies the rows of w into the arena and points w at the copy. Views that share data (a tied
  // output matrix) must be adopted once and copied by value afterwards. Throws hcattn::Error when the
  // arena is too small (a sizing bug, not a run-time condition).
  void adopt(WeightView& w);
  // adopt() for many views, the copying spread over `threads` threads: each fresh huge page costs the
  // kernel a 2 MB clear on first touch (in a VM, host page faults too), which dominates the copy.
  void adopt_all(const std::vector<WeightView*>& views, int threads);

  // Bytes an arena needs for w (its rows, aligned).
  static size_t bytes_for(const WeightView& w);

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;    // bytes asked for: adopt() fills up to here
  size_t mapped_ = 0;  // bytes mapped from base_ (size_ rounded up to whole huge pages)
  size_t used_ = 0;
  bool huge_pages_ = false;
};

}  // namespace hcattn::cpu
