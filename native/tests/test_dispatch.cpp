// The run-time SIMD dispatch: the level chosen never exceeds what the CPU reports, and HCATTN_SIMD
// lowers it (that is how the fallback kernels get exercised on a machine with AVX-512).
#include <cstdio>
#include <cstdlib>

#include "cpu/features.h"
#include "test_util.h"

using namespace hcattn::cpu;

int main() {
  const Features& f = features();
  const SimdLevel level = simd_level();
  std::printf("simd level: %s (avx2=%d fma=%d f16c=%d avx512f=%d bw=%d vl=%d vnni=%d bf16=%d)\n",
              simd_level_name(level), f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vl,
              f.avx512vnni, f.avx512bf16);
  if (level == SimdLevel::Avx512) CHECK(f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx2);
  if (level == SimdLevel::Avx2) CHECK(f.avx2 && f.fma && f.f16c);
  if (const char* want = std::getenv("HCATTN_SIMD")) {
    if (std::string(want) == "scalar") CHECK(level == SimdLevel::Scalar);
  }
  return test_summary("dispatch");
}
