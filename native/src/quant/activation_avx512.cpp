// AVX-512 activation conversions: bit-identical to the scalar definitions in activation.cpp (explicit
// round-half-even conversions, the same float operations per element).
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own placeholder registers (GCC bug
// 105593); the warning is about the headers, not this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "quant/activation.h"

namespace hcattn::quant {

namespace {

constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

void q8_0_avx512(const float* x, BlockQ8_0* y, int64_t n) {
  const __m512 sign_mask = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512 a = _mm512_max_ps(_mm512_andnot_ps(sign_mask, v0), _mm512_andnot_ps(sign_mask, v1));
    const float amax = _mm512_reduce_max_ps(a);
    y[b].d = static_cast<uint16_t>(_cvtss_sh(amax / 127.0f, kRne));
    const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), kRne);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), kRne);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + 16), _mm512_cvtepi32_epi8(q1));
  }
}

void q8_k_avx512(const float* x, BlockQ8_K* y, int64_t n) {
  const __m512 sign_mask = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    __m512 a = _mm512_setzero_ps();
    for (int i = 0; i < QK_K; i += 16) a = _mm512_max_ps(a, _mm512_andnot_ps(sign_mask, _mm512_loadu_ps(x + i)));
    const float amax = _mm512_reduce_max_ps(a);
    BlockQ8_K& out = y[b];
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    // The signed maximum is the first element whose magnitude equals amax (the scalar scan keeps the
    // first on ties, and the sign of the scale depends on which one it picked).
    float max = 0.0f;
    const __m512 amax_v = _mm512_set1_ps(amax);
    for (int i = 0; i < QK_K; i += 16) {
      const __m512 v = _mm512_loadu_ps(x + i);
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign_mask, v), amax_v, _CMP_EQ_OQ);
      if (hit) {
        max = x[i + __builtin_ctz(hit)];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m512 s = _mm512_set1_ps(iscale);
    const __m512i limit = _mm512_set1_epi32(127);
    for (int k = 0; k < QK_K / 16; ++k) {
      __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), s), kRne);
      q = _mm512_min_epi32(q, limit);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.qs + 16 * k), _mm512_cvtepi32_epi8(q));
      out.bsums[k] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    out.d = 1.0f / iscale;
  }
}

void f16_avx512(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), kRne));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(y + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), kRne));
  }
}

// The integer form of round-to-nearest-even (the BF16 conversion instruction flushes subnormals, so it
// would not match the scalar definition).
__m256i bf16_round(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

void bf16_avx512(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), bf16_round(_mm512_loadu_ps(x + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(y + i, m, bf16_round(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

}  // namespace

namespace detail {
extern const ActivationKernels activation_avx512 = {q8_0_avx512, q8_k_avx512, f16_avx512, bf16_avx512};
}  // namespace detail

}  // namespace hcattn::quant
