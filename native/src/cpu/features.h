// Run-time CPU feature detection: the SIMD level every kernel dispatch reads.
#pragma once
#include <string>

namespace hcattn::cpu {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct Features {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool avx512vbmi = false;  // byte permutes across a register (the key-code LUT lookups)
};

// What this CPU supports (read once, cached).
const Features& features();

// The level kernels run at: the best the CPU supports, lowered by the environment variable
// HCATTN_SIMD=scalar|avx2|avx512 (for tests of the fallbacks and for benchmarks).
SimdLevel simd_level();

const char* simd_level_name(SimdLevel level);

}  // namespace hcattn::cpu
