// WeightArena (cpu/weight_arena.h): adopted weights are exact copies at aligned addresses (also when
// several threads copy), products on them equal products on the originals, a source in anonymous
// memory is left intact (releasing its pages would zero it), a source in a file mapping stays readable
// and leaves this process's resident set, and an undersized arena is an error that says so.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/matmul.h"
#include "cpu/weight_arena.h"
#include "quant/random_weights.h"
#include "test_util.h"

using namespace hcattn;
using quant::GgmlType;

namespace {

// Resident kilobytes of the mapping that starts at `start`, from /proc/self/smaps (-1 if not found).
long resident_kb(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  char head[32];
  std::snprintf(head, sizeof head, "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(start)));
  std::string line;
  bool in_mapping = false;
  while (std::getline(smaps, line)) {
    if (line.rfind(head, 0) == 0) in_mapping = true;
    if (in_mapping && line.rfind("Rss:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

}  // namespace

int main() {
  cpu::ThreadPool pool(2);
  const int64_t cols = 4096, rows = 300;
  const GgmlType t = GgmlType::Q4_0;
  const size_t row_bytes = quant::row_size(t, cols);

  // Heap sources: copies are exact, aligned, and the sources are untouched.
  {
    const std::vector<uint8_t> a = quant::random_weights(t, rows, cols, 1), b = quant::random_weights(t, 17, cols, 2);
    const std::vector<uint8_t> a_before = a, b_before = b;
    cpu::WeightView wa{t, a.data(), rows, cols, row_bytes}, wb{t, b.data(), 17, cols, row_bytes};
    const cpu::WeightView wa_orig = wa;
    cpu::WeightArena arena(cpu::WeightArena::bytes_for(wa) + cpu::WeightArena::bytes_for(wb));
    CHECK(arena.ok());
    std::printf("arena on huge pages: %s\n", arena.huge_pages() ? "yes" : "no");
    arena.adopt(wa);
    arena.adopt(wb);
    CHECK(wa.data != a.data() && wb.data != b.data());
    CHECK(reinterpret_cast<uintptr_t>(wa.data) % 64 == 0 && reinterpret_cast<uintptr_t>(wb.data) % 64 == 0);
    CHECK(std::memcmp(wa.data, a.data(), a.size()) == 0);
    CHECK(std::memcmp(wb.data, b.data(), b.size()) == 0);
    CHECK(a == a_before && b == b_before);
    CHECK(arena.used() == cpu::WeightArena::bytes_for(wa) + cpu::WeightArena::bytes_for(wb));
    std::vector<float> x(cols), y0(rows), y1(rows);
    for (int64_t i = 0; i < cols; ++i) x[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
    cpu::matmul(wa_orig, x.data(), 1, y0.data(), pool);
    cpu::matmul(wa, x.data(), 1, y1.data(), pool);
    CHECK(std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(float)) == 0);

    // Full: a sizing bug is reported, and the view is left alone.
    cpu::WeightView wc{t, a.data(), rows, cols, row_bytes};
    bool threw = false;
    try {
      arena.adopt(wc);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("cannot hold") != std::string::npos;
    }
    CHECK(threw);
    CHECK(wc.data == a.data());
  }

  // Many views copied by several threads (ranges of the arena that start and end inside views).
  {
    std::vector<std::vector<uint8_t>> sources;
    std::vector<cpu::WeightView> views;
    for (int64_t r : {int64_t{30000}, int64_t{7}, int64_t{41000}, int64_t{1}}) {
      sources.push_back(quant::random_weights(t, r, cols, static_cast<uint64_t>(r)));
      views.push_back({t, sources.back().data(), r, cols, row_bytes});
    }
    size_t bytes = 0;
    std::vector<cpu::WeightView*> ptrs;
    for (cpu::WeightView& v : views) {
      bytes += cpu::WeightArena::bytes_for(v);
      ptrs.push_back(&v);
    }
    cpu::WeightArena arena(bytes);
    arena.adopt_all(ptrs, 3);
    bool exact = true;
    for (size_t i = 0; i < views.size(); ++i) {
      exact = exact && views[i].data != sources[i].data() &&
              std::memcmp(views[i].data, sources[i].data(), sources[i].size()) == 0;
    }
    CHECK(exact);
    CHECK(arena.used() == bytes);
  }

  // A file mapping: the copy is exact, the mapping still reads the same bytes, and the copied range no
  // longer counts in this process's resident set.
  {
    const int64_t file_rows = 2048;  // 4.5 MB
    const std::vector<uint8_t> bytes = quant::random_weights(t, file_rows, cols, 3);
    char path[] = "/tmp/hcattn-arena-XXXXXX";
    const int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    void* map = mmap(nullptr, bytes.size(), PROT_READ, MAP_PRIVATE, fd, 0);
    CHECK(map != MAP_FAILED);
    close(fd);
    unlink(path);
    const auto* base = static_cast<const uint8_t*>(map);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < bytes.size(); i += 4096) sink = static_cast<uint8_t>(sink + base[i]);
    const long before = resident_kb(map);
    // Rows 100..1999: the middle of the mapping, not page-aligned at either end.
    cpu::WeightView w{t, base + 100 * row_bytes, 1900, cols, row_bytes};
    cpu::WeightArena arena(cpu::WeightArena::bytes_for(w));
    arena.adopt(w);
    const long after = resident_kb(map);
    std::printf("file mapping resident: %ld KB before, %ld KB after adopting %zu KB\n", before, after,
                static_cast<size_t>(1900 * row_bytes / 1024));
    CHECK(before > 0 && after >= 0);
    CHECK(before - after >= static_cast<long>(1900 * row_bytes / 1024) - 8);
    CHECK(std::memcmp(w.data, bytes.data() + 100 * row_bytes, 1900 * row_bytes) == 0);
    CHECK(std::memcmp(base, bytes.data(), bytes.size()) == 0);
    munmap(map, bytes.size());
  }

  // Nothing to hold: an empty arena is not ok and adopt leaves views where they are.
  {
    cpu::WeightArena empty(0);
    CHECK(!empty.ok());
    std::vector<uint8_t> a = quant::random_weights(t, 1, cols, 4);
    cpu::WeightView w{t, a.data(), 1, cols, row_bytes};
    empty.adopt(w);
    CHECK(w.data == a.data());
  }
  return test_summary("weight_arena");
}
