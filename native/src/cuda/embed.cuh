// Token embedding lookup on the GPU: rows of the embedding table (any type the CUDA matmul takes)
// dequantized to F32, as quant::dequantize_row does on the CPU.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/matmul.cuh"

namespace hcattn::cuda {

// ids: (n) token ids on the device, each in [0, table.rows) (the caller checks); x: (n, table.cols).
void embed_rows(const DeviceWeight& table, const int32_t* ids, int n, float* x, cudaStream_t stream);

}  // namespace hcattn::cuda
