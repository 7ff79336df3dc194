#include "cpu/features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define HCATTN_X86 1
#endif

namespace hcattn::cpu {

namespace {

#if HCATTN_X86
// XCR0 tells whether the OS saves the wide registers; without it AVX instructions fault.
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

Features detect() {
  Features f;
#if HCATTN_X86
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = ecx & (1u << 27);
  if (!osxsave) return f;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;
  const bool zmm_saved = (xcr0 & 0xE6) == 0xE6;
  const bool fma = ecx & (1u << 12), f16c = ecx & (1u << 29);
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  if (ymm_saved) {
    f.avx2 = ebx & (1u << 5);
    f.fma = fma;
    f.f16c = f16c;
  }
  if (zmm_saved) {
    f.avx512f = ebx & (1u << 16);
    f.avx512dq = ebx & (1u << 17);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
    f.avx512vbmi = ecx & (1u << 1);
    f.avx512vnni = ecx & (1u << 11);
    unsigned int a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = a1 & (1u << 5);
  }
#endif
  return f;
}

SimdLevel detect_level() {
  const Features& f = features();
  SimdLevel best = SimdLevel::Scalar;
  if (f.avx2 && f.fma && f.f16c) best = SimdLevel::Avx2;
  if (best == SimdLevel::Avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni)
    best = SimdLevel::Avx512;
  if (const char* want = std::getenv("HCATTN_SIMD")) {
    SimdLevel cap = best;
    if (std::strcmp(want, "scalar") == 0) cap = SimdLevel::Scalar;
    else if (std::strcmp(want, "avx2") == 0) cap = SimdLevel::Avx2;
    if (static_cast<int>(cap) < static_cast<int>(best)) best = cap;
  }
  return best;
}

}  // namespace

const Features& features() {
  static const Features f = detect();
  return f;
}

SimdLevel simd_level() {
  static const SimdLevel level = detect_level();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace hcattn::cpu
