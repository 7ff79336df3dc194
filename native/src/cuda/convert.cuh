// F32 → F16 (round to nearest even) on the GPU: keys and values into an f16 KV cache.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

// dst: n f16 bit patterns; src: n floats. Both on the device.
void f32_to_f16(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream);

}  // namespace hcattn::cuda
