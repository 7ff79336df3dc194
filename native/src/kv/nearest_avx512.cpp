#include <immintrin.h>

#include <limits>

#include "kv/nearest.h"

namespace hcattn::kv {

void assign_nearest_avx512(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                           const float* norms, int c, int32_t* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t i = 0; i < n; ++i) {
    const float* x = pts + i * stride;
    __m512 best = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    __m512i best_k = _mm512_setzero_si512();
    for (int k0 = 0; k0 < c; k0 += 16) {
      __m512 acc = _mm512_loadu_ps(norms + k0);
      for (int j = 0; j < sub; ++j)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(-2.0f * x[j]), _mm512_loadu_ps(transposed + static_cast<int64_t>(j) * c + k0), acc);
      // Strictly smaller only, so each lane keeps its first minimum (lowest centroid index).
      const __mmask16 better = _mm512_cmp_ps_mask(acc, best, _CMP_LT_OQ);
      best = _mm512_mask_mov_ps(best, better, acc);
      best_k = _mm512_mask_mov_epi32(best_k, better, _mm512_add_epi32(lane, _mm512_set1_epi32(k0)));
    }
    // Across lanes: the smallest distance, and among equal ones the lowest index.
    const float m = _mm512_reduce_min_ps(best);
    const __mmask16 at_min = _mm512_cmp_ps_mask(best, _mm512_set1_ps(m), _CMP_EQ_OQ);
    out[i] = _mm512_mask_reduce_min_epi32(at_min, best_k);
  }
}

}  // namespace hcattn::kv
