// SwiGLU on the GPU: gate[i] = silu(gate[i]) · up[i], in place on the gate projection.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

void swiglu(float* gate, const float* up, int64_t n, cudaStream_t stream);

}  // namespace hcattn::cuda
