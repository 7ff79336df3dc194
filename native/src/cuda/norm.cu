#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

constexpr int kNormThreads = 256;

__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float* x, const float* __restrict__ w, int dim, float eps, float* y) {
  __shared__ float partial[kNormThreads / kWarp];
  __shared__ float scale;
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0;
  for (int i = threadIdx.x; i < dim; i += kNormThreads) sum += xr[i] * xr[i];
  sum = warp_sum(sum);
  if (threadIdx.x % kWarp == 0) partial[threadIdx.x / kWarp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0;
    for (int i = 0; i < kNormThreads / kWarp; ++i) total += partial[i];
    scale = rsqrtf(total / static_cast<float>(dim) + eps);
  }
  __syncthreads();
  // Every read of xr above happened before this barrier, so y may alias x.
  for (int i = threadIdx.x; i < dim; i += kNormThreads) yr[i] = (xr[i] * scale) * w[i];
}

}  // namespace

void rms_norm(const float* x, const float* w, int n_rows, int dim, float eps, float* y, cudaStream_t stream) {
  if (n_rows <= 0) return;
  rms_norm_kernel<<<n_rows, kNormThreads, 0, stream>>>(x, w, dim, eps, y);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
