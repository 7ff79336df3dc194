#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

constexpr int kValueWarps = 8;
constexpr int kMaxValueDim = 256;
constexpr int kValueDimsPerLane = kMaxValueDim / kWarp;

// One block per query head; each warp takes every 8th selected token and its lanes read the row's
// dims lane, lane+32, ... (a warp reads one row in a single pass, so over the bus each selected row is
// one burst); the warps' partial sums are added in shared memory.
__global__ void __launch_bounds__(kValueWarps * kWarp)
    sum_selected_values_kernel(const int32_t* __restrict__ index, const float* __restrict__ weight,
                               const int32_t* __restrict__ offsets, ValueLayout layout, float* __restrict__ out) {
  __shared__ float partial[kValueWarps][kMaxValueDim];
  const int h = blockIdx.x;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const __half* base = reinterpret_cast<const __half*>(layout.values) +
                       static_cast<int64_t>(h / layout.heads_per_kv) * layout.kv_head_offset;
  float acc[kValueDimsPerLane] = {};
  const int begin = offsets[h], end = offsets[h + 1];
#pragma unroll 4
  for (int i = begin + warp; i < end; i += kValueWarps) {
    const __half* row = base + static_cast<int64_t>(index[i]) * layout.token_stride;
    const float w = weight[i];
#pragma unroll
    for (int c = 0; c < kValueDimsPerLane; ++c)
      if (lane + kWarp * c < layout.dim) acc[c] += w * __half2float(row[lane + kWarp * c]);
  }
#pragma unroll
  for (int c = 0; c < kValueDimsPerLane; ++c)
    if (lane + kWarp * c < layout.dim) partial[warp][lane + kWarp * c] = acc[c];
  __syncthreads();
  for (int c = threadIdx.x; c < layout.dim; c += blockDim.x) {
    float s = 0;
    for (int w = 0; w < kValueWarps; ++w) s += partial[w][c];
    out[static_cast<size_t>(h) * layout.dim + c] = s;
  }
}

}  // namespace

void sum_selected_values(const int32_t* index, const float* weight, const int32_t* offsets, int n_heads,
                         const ValueLayout& layout, float* out, cudaStream_t stream) {
  if (layout.dim <= 0 || layout.dim > kMaxValueDim || layout.heads_per_kv <= 0) {
    throw Error("CUDA value sum: head dimension " + std::to_string(layout.dim) + " is not supported (1..256)");
  }
  if (n_heads <= 0) return;
  sum_selected_values_kernel<<<n_heads, kValueWarps * kWarp, 0, stream>>>(index, weight, offsets, layout, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
