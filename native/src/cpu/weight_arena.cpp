#include "cpu/weight_arena.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "common/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace hcattn::cpu {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kAlign = 64;  // a cache line: every weight starts on one
// Bytes copied before the source pages are released: what the copy adds to the resident set at most,
// per copying thread.
constexpr size_t kCopyStep = size_t{32} << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

size_t WeightArena::bytes_for(const WeightView& w) { return round_up(static_cast<size_t>(w.rows) * w.row_bytes, kAlign); }

#if defined(__linux__)

WeightArena::WeightArena(size_t bytes) {
  if (bytes == 0) return;
  // Over-reserve one huge page so that the usable range can start on a 2 MB boundary (only aligned
  // 2 MB ranges can become huge pages).
  const size_t reserve = round_up(bytes, kHugePage) + kHugePage;
  void* p = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  auto* raw = static_cast<uint8_t*>(p);
  auto* aligned = reinterpret_cast<uint8_t*>(round_up(reinterpret_cast<uintptr_t>(raw), kHugePage));
  if (aligned > raw) munmap(raw, static_cast<size_t>(aligned - raw));
  base_ = aligned;
  mapped_ = reserve - static_cast<size_t>(aligned - raw);
  size_ = bytes;
  huge_pages_ = madvise(base_, mapped_, MADV_HUGEPAGE) == 0;
}

WeightArena::~WeightArena() {
  if (base_) munmap(base_, mapped_);
}

namespace {

// Whether [p, p + n) lies in one mapping of a file (an inode in /proc/self/maps), as opposed to
// anonymous memory such as a test's in-memory model image.
bool in_file_mapping(const uint8_t* p, size_t n) {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (!maps) return false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  bool found = false;
  char line[512];
  while (!found && std::fgets(line, sizeof line, maps)) {
    unsigned long long begin = 0, end = 0, offset = 0, inode = 0;
    char perms[8] = {}, device[32] = {};
    if (std::sscanf(line, "%llx-%llx %7s %llx %31s %llu", &begin, &end, perms, &offset, device, &inode) == 6 &&
        addr >= begin && addr + n <= end) {
      found = inode != 0;
      break;
    }
  }
  std::fclose(maps);
  return found;
}

// The source's whole pages are dropped from this process's resident set. Only for a file mapping
// (in_file_mapping): a private read-only file mapping refills them from the page cache if they are
// read again (the token embedding rows are, when the output matrix is tied to them); anonymous memory
// would be zeroed instead.
void release_source(const uint8_t* src, size_t n) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = round_up(reinterpret_cast<uintptr_t>(src), page);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(src) + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

#else

WeightArena::WeightArena(size_t) {}
WeightArena::~WeightArena() {}
namespace {
bool in_file_mapping(const uint8_t*, size_t) { return false; }
void release_source(const uint8_t*, size_t) {}
}  // namespace

#endif

void WeightArena::adopt(WeightView& w) { adopt_all({&w}, 1); }

void WeightArena::adopt_all(const std::vector<WeightView*>& views, int threads) {
  if (!ok()) return;
  // Where each view goes, in order; then the copies, split into equal byte ranges of the arena.
  struct Piece {
    const uint8_t* src;
    size_t offset, bytes;
    bool from_file;  // release the copied source pages (see release_source)
  };
  std::vector<Piece> pieces;
  size_t end = used_;
  for (const WeightView* w : views) {
    const size_t need = bytes_for(*w);
    if (end + need > size_) {
      throw Error("weight arena of " + std::to_string(size_) + " bytes cannot hold another " + std::to_string(need) +
                  " bytes (it was sized for fewer weights)");
    }
    const auto* src = static_cast<const uint8_t*>(w->data);
    const size_t bytes = static_cast<size_t>(w->rows) * w->row_bytes;
    pieces.push_back({src, end, bytes, in_file_mapping(src, bytes)});
    end += need;
  }
  const size_t begin = used_, total = end - begin;
  // Each copied part of a source leaves the resident set right away, so that the peak stays near the
  // model's size rather than twice it.
  auto copy_range = [&](size_t lo, size_t hi) {
    for (const Piece& p : pieces) {
      const size_t a = std::max(lo, p.offset), b = std::min(hi, p.offset + p.bytes);
      for (size_t step = a; step < b; step += kCopyStep) {
        const size_t n = std::min(kCopyStep, b - step);
        std::memcpy(base_ + step, p.src + (step - p.offset), n);
        if (p.from_file) release_source(p.src + (step - p.offset), n);
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(total / (size_t{64} << 20)) + 1));
  std::vector<std::thread> helpers;
  for (int t = 1; t < n; ++t) helpers.emplace_back(copy_range, begin + total * t / n, begin + total * (t + 1) / n);
  copy_range(begin, begin + total / n);
  for (std::thread& h : helpers) h.join();
  for (size_t i = 0; i < views.size(); ++i) views[i]->data = base_ + pieces[i].offset;
  used_ = end;
}

}  // namespace hcattn::cpu
