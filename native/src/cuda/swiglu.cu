#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

__global__ void swiglu_kernel(float* __restrict__ gate, const float* __restrict__ up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + expf(-g))) * up[i];
  }
}

}  // namespace

void swiglu(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(blocks_for(n, 256), 65536));
  swiglu_kernel<<<blocks, 256, 0, stream>>>(gate, up, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
