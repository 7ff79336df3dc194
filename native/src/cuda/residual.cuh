// The residual connection on the GPU: x[i] += y[i].
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

void add_residual(float* x, const float* y, int64_t n, cudaStream_t stream);

}  // namespace hcattn::cuda
