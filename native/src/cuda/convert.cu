#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

__global__ void f32_to_f16_kernel(const float* __restrict__ src, __half* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2half_rn(src[i]);
}

}  // namespace

void f32_to_f16(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(n, 256), 65536));
  f32_to_f16_kernel<<<blocks, 256, 0, stream>>>(src, reinterpret_cast<__half*>(dst), n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
