// Helpers shared by the x86 kernel files (matmul_avx2.cpp, matmul_avx512.cpp, kv/f16_rows_avx2.cpp).
// Include only from files compiled with AVX2, FMA and F16C at least. Everything here has internal linkage, so each file gets
// its own copy compiled for its own instruction set (one shared out-of-line copy could end up
// compiled with AVX-512 and be called on a CPU without it).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/types.h"

namespace hcattn::cpu {
namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// Software prefetch distance for the streamed weight rows. The hardware prefetcher alone leaves a
// third of the bandwidth unused on the 2-4 KB rows of decode (measured on Zen 4).
constexpr int kPrefetchBytes = 2048;

inline void prefetch_lines(const uint8_t* p, int lines) {
  for (int i = 0; i < lines; ++i) _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes + 64 * i, _MM_HINT_T0);
}

inline __m256i shift_right_16(__m256i v, int bits) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(bits)); }

// Q6_K elements 32c..32c+31 as code + 32 = low4 | high2 << 4 (FORMATS.md §2.3).
inline __m256i codes_q6_k(const quant::BlockQ6_K* blk, int c) {
  const int half = c / 4, g = c % 4;
  const __m256i low4 = _mm256_and_si256(shift_right_16(load256(blk->ql + 64 * half + (g & 1) * 32), g < 2 ? 0 : 4),
                                        _mm256_set1_epi8(0x0F));
  const __m256i high2 = _mm256_and_si256(shift_right_16(load256(blk->qh + 32 * half), 2 * g), _mm256_set1_epi8(3));
  return _mm256_or_si256(low4, _mm256_slli_epi16(high2, 4));
}

// A float result the compiler cannot fuse into the next operation (an FMA rounds once where the scalar
// kernel, compiled without FMA, rounds twice).
inline float unfused(float v) {
  __asm__("" : "+x"(v));
  return v;
}
inline __m256 unfused(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

// One K-quant super-block added to a row's running sum with the scalar kernel's operations in its
// order, from exact integer sums: every K-quant path (scalar, decode, prefill panels, every level) then
// gives the same bit pattern, and a prompt's hidden state does not depend on how it was batched. A
// last-bit difference would flip a round-half-even decision of the next Q8_K quantization (one step
// of max/127, large with an outlier channel) and move log-probabilities by ~1e-2.
inline float k4_step(float sum, float d, float dmin, float act_d, int32_t isum, int32_t imin) {
  const float d_eff = unfused(d * act_d), dmin_eff = unfused(dmin * act_d);
  return sum + unfused(unfused(d_eff * static_cast<float>(isum)) - unfused(dmin_eff * static_cast<float>(imin)));
}
inline float q6_step(float sum, float d, float act_d, int32_t isum) {
  return sum + unfused(unfused(d * act_d) * static_cast<float>(isum));
}

}  // namespace
}  // namespace hcattn::cpu
