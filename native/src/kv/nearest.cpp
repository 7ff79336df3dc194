#include "kv/nearest.h"

#include <algorithm>
#include <vector>

#include "cpu/features.h"

namespace hcattn::kv {

void assign_nearest_scalar(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                           const float* norms, int c, int32_t* out) {
  std::vector<float> dist(c);
  for (int64_t i = 0; i < n; ++i) {
    const float* x = pts + i * stride;
    std::copy(norms, norms + c, dist.begin());
    for (int j = 0; j < sub; ++j) {
      const float xj2 = -2.0f * x[j];
      const float* tj = transposed + static_cast<int64_t>(j) * c;
      for (int k = 0; k < c; ++k) dist[k] += xj2 * tj[k];
    }
    out[i] = static_cast<int32_t>(std::min_element(dist.begin(), dist.end()) - dist.begin());
  }
}

void assign_nearest(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                    const float* norms, int c, int32_t* out) {
  if (cpu::simd_level() == cpu::SimdLevel::Avx512 && c % 16 == 0)
    assign_nearest_avx512(pts, n, stride, sub, transposed, norms, c, out);
  else
    assign_nearest_scalar(pts, n, stride, sub, transposed, norms, c, out);
}

}  // namespace hcattn::kv
