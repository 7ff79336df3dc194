// AVX2 + F16C activation conversions, used at the AVX2 and AVX-512 levels: bit-identical to the scalar
// definitions in activation.cpp (explicit round-half-even conversions, the same float operations per
// element).
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

float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

int hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Rounds 8 floats to int32 (half to even) and packs them into 8 int8 (values are within ±127).
void store_q8x8(int8_t* dst, __m256 v) {
  const __m256i q = _mm256_cvtps_epi32(_mm256_round_ps(v, kRne));
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  const __m128i b = _mm_packs_epi16(w, w);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), b);
}

void q8_0_avx2(const float* x, BlockQ8_0* y, int64_t n) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    __m256 v[4];
    __m256 a = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + 8 * i);
      a = _mm256_max_ps(a, _mm256_andnot_ps(sign_mask, v[i]));
    }
    const float amax = hmax(a);
    y[b].d = static_cast<uint16_t>(_cvtss_sh(amax / 127.0f, kRne));
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    for (int i = 0; i < 4; ++i) store_q8x8(y[b].qs + 8 * i, _mm256_mul_ps(v[i], id));
  }
}

void q8_k_avx2(const float* x, BlockQ8_K* y, int64_t n) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    __m256 a = _mm256_setzero_ps();
    for (int i = 0; i < QK_K; i += 8) a = _mm256_max_ps(a, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(x + i)));
    const float amax = hmax(a);
    BlockQ8_K& out = y[b];
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    // The first element of largest magnitude decides the sign of the scale, as in the scalar scan.
    float max = 0.0f;
    const __m256 amax_v = _mm256_set1_ps(amax);
    for (int i = 0; i < QK_K; i += 8) {
      const __m256 v = _mm256_loadu_ps(x + i);
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign_mask, v), amax_v, _CMP_EQ_OQ));
      if (hit) {
        max = x[i + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 s = _mm256_set1_ps(iscale);
    const __m256i limit = _mm256_set1_epi32(127);
    for (int k = 0; k < QK_K / 16; ++k) {
      __m256i q[2];
      for (int h = 0; h < 2; ++h) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 16 * k + 8 * h), s);
        q[h] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(v, kRne)), limit);
        const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q[h]), _mm256_extracti128_si256(q[h], 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out.qs + 16 * k + 8 * h), _mm_packs_epi16(w, w));
      }
      out.bsums[k] = static_cast<int16_t>(hsum_epi32(_mm256_add_epi32(q[0], q[1])));
    }
    out.d = 1.0f / iscale;
  }
}

void f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), kRne));
  }
  for (; i < n; ++i) y[i] = static_cast<uint16_t>(_cvtss_sh(x[i], kRne));
}

void bf16_avx2(const float* x, uint16_t* y, int64_t n) {
  const __m256i one = _mm256_set1_epi32(1), round = _mm256_set1_epi32(0x7FFF), quiet = _mm256_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(bits, 16);
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(_mm256_and_si256(hi, one), round)), 16);
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, quiet), nan);
    // Values are < 2^16, so the unsigned-saturating pack is exact.
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), packed);
  }
  for (; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

}  // namespace

namespace detail {
extern const ActivationKernels activation_avx2 = {q8_0_avx2, q8_k_avx2, f16_avx2, bf16_avx2};
}  // namespace detail

}  // namespace hcattn::quant
