#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

}  // namespace

void add_residual(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(n, 256), 65536));
  add_kernel<<<blocks, 256, 0, stream>>>(x, y, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
