// RMSNorm on the GPU: y = x / sqrt(mean(x²) + eps) · w, one block per row.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

// x, y: (n_rows, dim) on the device (may alias); w: (dim).
void rms_norm(const float* x, const float* w, int n_rows, int dim, float eps, float* y, cudaStream_t stream);

}  // namespace hcattn::cuda
