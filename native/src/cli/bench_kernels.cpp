// Kernel micro-benchmark. Decode: GEMV (one token) on the Llama-3-8B projection shapes, reported as
// weight bytes streamed per second; the weights of all shapes together exceed the last-level cache
// and are used in rotation, as a model's layers are, so the figure is a memory-bandwidth figure, given
// for weights on ordinary 4 KB pages and on the engine's huge-page WeightArena.
// Prefill: GEMM with many tokens (default 512), reported as integer/float operations per second
// (2 * rows * cols * tokens) and as the prefill rate of an 8B model if every matmul ran at that speed.
// Every figure is the median of several repeats (the machine may be shared). Next to the wall-clock
// rate, the rate per CPU-second of the process (times the thread count) shows what the kernels do when
// they get the cores: on a busy machine the wall-clock rate mostly measures the other processes.
#include "cli/bench_kernels.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/features.h"
#include "cpu/matmul.h"
#include "cpu/matmul_kernels.h"
#include "cpu/weight_arena.h"
#include "quant/random_weights.h"
#include "quant/types.h"

namespace hcattn::cli {

namespace {

using quant::GgmlType;

struct Options {
  int threads = 2;
  int repeats = 5;
  int64_t tokens = 512;
  std::vector<GgmlType> types = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K,
                                 GgmlType::Q6_K, GgmlType::F16,  GgmlType::BF16, GgmlType::F32};
  std::vector<cpu::SimdLevel> levels;
  bool gemv = true, gemm = true, json = false;
};

// Multiply-adds per token of Llama-3-8B (32 layers of q,k,v,o,gate,up,down plus the output matrix),
// times 2 for operations: what one prefill token costs in matmuls.
constexpr double kLlama8bOpsPerToken =
    2.0 * (32.0 * (4096.0 * 4096 * 2 + 1024.0 * 4096 * 2 + 3 * 14336.0 * 4096) + 128256.0 * 4096);

bool parse_type(const std::string& s, GgmlType* t) {
  const GgmlType all[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                          GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (GgmlType c : all) {
    std::string name = quant::type_name(c);
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (s == name || s == lower) {
      *t = c;
      return true;
    }
  }
  return false;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void usage() {
  std::fprintf(stderr,
               "usage: hcattn-cli bench-kernels [--threads N] [--repeats N] [--tokens N]\n"
               "                                [--types q4_0,q8_0,...] [--levels scalar,avx2,avx512]\n"
               "                                [--gemv-only | --gemm-only] [--json]\n");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Shape {
  int64_t rows, cols;
};
const Shape kShapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};

// `pages`: for GEMV, the memory the weights were read from ("4K" heap pages, "2M" huge pages, or
// "arena" when the arena got no huge pages); nullptr for GEMM.
void report(const Options& o, bool* first, const char* kind, GgmlType t, cpu::SimdLevel level, const Shape& s,
            double value, double cpu_value, const char* unit, double extra, const char* extra_unit,
            const char* pages = nullptr) {
  if (o.json) {
    std::printf("%s{\"kind\":\"%s\",\"type\":\"%s\",\"simd\":\"%s\",\"threads\":%d,\"rows\":%lld,\"cols\":%lld,"
                "\"unit\":\"%s\",\"wall\":%.3f,\"perCpu\":%.3f",
                *first ? "" : ",\n", kind, quant::type_name(t), cpu::simd_level_name(level), o.threads,
                static_cast<long long>(s.rows), static_cast<long long>(s.cols), unit, value, cpu_value);
    if (pages) std::printf(",\"pages\":\"%s\"", pages);
    if (extra_unit) std::printf(",\"tokPerSec8b\":%.2f", extra);
    std::printf("}");
  } else {
    std::printf("%-5s %-5s %-7s %-5s %6lldx%-6lld %9.2f %-6s (per CPU-second x threads: %8.2f)", kind,
                quant::type_name(t), cpu::simd_level_name(level), pages ? pages : "", static_cast<long long>(s.rows),
                static_cast<long long>(s.cols), value, unit, cpu_value);
    if (extra_unit) std::printf("  %.1f %s", extra, extra_unit);
    std::printf("\n");
  }
  std::fflush(stdout);
  *first = false;
}

void bench_gemv(const Options& o, GgmlType t, cpu::SimdLevel level, cpu::ThreadPool& pool, bool* first) {
  // Enough copies of the three shapes to exceed the last-level cache several times over, once in
  // ordinary heap memory (4 KB pages) and once copied into a WeightArena (2 MB pages where the system
  // allows them, as the engine keeps its weights). The two are timed in alternation, so that a busy
  // machine slows both alike.
  std::vector<std::vector<uint8_t>> data;
  std::vector<cpu::WeightView> small;
  size_t total = 0;
  for (uint64_t copy = 0; total < (size_t{256} << 20); ++copy) {
    for (const Shape& s : kShapes) {
      data.push_back(quant::random_weights(t, s.rows, s.cols, copy * 3 + small.size()));
      small.push_back({t, data.back().data(), s.rows, s.cols, quant::row_size(t, s.cols)});
      total += data.back().size();
    }
  }
  size_t arena_bytes = 0;
  for (const cpu::WeightView& w : small) arena_bytes += cpu::WeightArena::bytes_for(w);
  cpu::WeightArena arena(arena_bytes);
  std::vector<cpu::WeightView> huge = small;
  for (cpu::WeightView& w : huge) arena.adopt(w);
  const char* huge_name = arena.huge_pages() ? "2M" : "arena";
  std::vector<float> x(14336, 0.5f), y(14336);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t si = 0; si < 3; ++si) {
    std::vector<double> rates[2], cpu_rates[2];
    for (int rep = 0; rep < o.repeats; ++rep) {
      for (int mem = 0; mem < 2; ++mem) {
        const std::vector<cpu::WeightView>& views = mem == 0 ? small : huge;
        double bytes = 0;
        const double c0 = cpu_seconds();
        const auto t0 = std::chrono::steady_clock::now();
        do {
          for (size_t m = si; m < views.size(); m += 3) {
            cpu::matmul_at_level(level, views[m], x.data(), 1, y.data(), pool);
            bytes += static_cast<double>(views[m].rows) * views[m].row_bytes;
          }
        } while (seconds_since(t0) < 0.2);
        rates[mem].push_back(bytes / seconds_since(t0) / 1e9);
        cpu_rates[mem].push_back(bytes / ((cpu_seconds() - c0) / o.threads) / 1e9);
      }
    }
    for (int mem = 0; mem < 2; ++mem) {
      report(o, first, "gemv", t, level, kShapes[si], median(rates[mem]), median(cpu_rates[mem]), "GB/s", 0, nullptr,
             mem == 0 ? "4K" : huge_name);
    }
  }
}

void bench_gemm(const Options& o, GgmlType t, cpu::SimdLevel level, cpu::ThreadPool& pool, bool* first) {
  const Shape s = {4096, 4096};
  const std::vector<uint8_t> data = quant::random_weights(t, s.rows, s.cols, 99);
  const cpu::WeightView w{t, data.data(), s.rows, s.cols, quant::row_size(t, s.cols)};
  std::vector<float> x(static_cast<size_t>(s.cols * o.tokens)), y(static_cast<size_t>(s.rows * o.tokens));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f - 0.5f;
  std::vector<double> rates, cpu_rates;
  const double ops = 2.0 * s.rows * s.cols * o.tokens;
  for (int rep = 0; rep < o.repeats; ++rep) {
    int calls = 0;
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    do {
      cpu::matmul_at_level(level, w, x.data(), o.tokens, y.data(), pool);
      ++calls;
    } while (seconds_since(t0) < 0.3);
    rates.push_back(ops * calls / seconds_since(t0) / 1e9);
    cpu_rates.push_back(ops * calls / ((cpu_seconds() - c0) / o.threads) / 1e9);
  }
  const double gops = median(rates);
  report(o, first, "gemm", t, level, s, gops, median(cpu_rates), "GOP/s", gops * 1e9 / kLlama8bOpsPerToken,
         "tok/s 8B-equivalent (wall)");
}

}  // namespace

int bench_kernels(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench-kernels: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else if (arg == "--repeats") {
      o.repeats = std::max(1, std::atoi(next().c_str()));
    } else if (arg == "--tokens") {
      o.tokens = std::max(2, std::atoi(next().c_str()));
    } else if (arg == "--types") {
      o.types.clear();
      for (const std::string& name : split(next())) {
        GgmlType t;
        if (!parse_type(name, &t)) {
          std::fprintf(stderr, "bench-kernels: unknown type '%s' (use f32,f16,bf16,q8_0,q4_0,q4_k,q5_k,q6_k)\n",
                       name.c_str());
          return 2;
        }
        o.types.push_back(t);
      }
    } else if (arg == "--levels") {
      for (const std::string& name : split(next())) {
        if (name == "scalar") o.levels.push_back(cpu::SimdLevel::Scalar);
        else if (name == "avx2") o.levels.push_back(cpu::SimdLevel::Avx2);
        else if (name == "avx512") o.levels.push_back(cpu::SimdLevel::Avx512);
        else {
          std::fprintf(stderr, "bench-kernels: unknown level '%s' (use scalar,avx2,avx512)\n", name.c_str());
          return 2;
        }
      }
    } else if (arg == "--gemv-only") {
      o.gemm = false;
    } else if (arg == "--gemm-only") {
      o.gemv = false;
    } else if (arg == "--json") {
      o.json = true;
    } else {
      usage();
      return 2;
    }
  }
  if (o.levels.empty()) {
    // The best level and, below it, AVX2 (the scalar kernels are references, far too slow to time
    // on these shapes unless asked for).
    o.levels.push_back(cpu::simd_level());
    if (cpu::simd_level() == cpu::SimdLevel::Avx512) o.levels.push_back(cpu::SimdLevel::Avx2);
  }
  cpu::ThreadPool pool(o.threads);
  bool first = true;
  if (o.json) std::printf("[\n");
  else std::printf("threads %d, median of %d repeats, prefill tokens %lld\n", pool.size(), o.repeats, static_cast<long long>(o.tokens));
  for (GgmlType t : o.types) {
    for (cpu::SimdLevel level : o.levels) {
      if (static_cast<int>(level) > static_cast<int>(cpu::simd_level())) continue;
      if (o.gemv) bench_gemv(o, t, level, pool, &first);
      if (o.gemm) bench_gemm(o, t, level, pool, &first);
    }
  }
  if (o.json) std::printf("\n]\n");
  return 0;
}

}  // namespace hcattn::cli
