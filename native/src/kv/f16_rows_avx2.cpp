#include <immintrin.h>

#include "kv/f16_rows.h"
#include "quant/types.h"

namespace hcattn::kv {

float dot_f16_avx2(const float* q, const uint16_t* k, int d) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; i < d; ++i) sum += q[i] * quant::fp16_to_fp32(k[i]);
  return sum;
}

void axpy_f16_avx2(float w, const uint16_t* v, float* out, int d) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(out + i)));
  }
  for (; i < d; ++i) out[i] += w * quant::fp16_to_fp32(v[i]);
}

}  // namespace hcattn::kv
