// Weight × activation products on the GPU with the weights in their GGUF block layout (Q4_0, Q8_0,
// Q4_K, Q6_K, F16, BF16; F32 for test models): a GEMV for decode (one warp per weight row, weights
// dequantized in registers, F32 activations) and a tensor-core GEMM for prefill (128×128 output
// tiles, weights and activations converted to F16 in shared memory, F32 accumulation with wmma).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "quant/types.h"

namespace hcattn::cuda {

// A 2-D weight in device memory: `rows` rows of `cols` elements, each row `row_bytes` long.
struct DeviceWeight {
  quant::GgmlType type = quant::GgmlType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// Whether the CUDA matmul handles this type (Q4_0 Q8_0 Q4_K Q6_K F16 BF16 F32).
bool matmul_supports(quant::GgmlType t);

// y[t * w.rows + r] = dot(row r of w, x[t * w.cols ...]) for t in [0, n_tokens); x and y on the device.
// Picks the GEMV for small n_tokens and the tensor-core GEMM otherwise. Throws for unsupported types
// or cols that are not a whole number of blocks.
void matmul(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream);

// The two paths, callable directly (tests and benchmarks compare both against the CPU).
void matmul_gemv(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream);
void matmul_gemm(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream);

// Fills a weight with random codes and well-formed small scales on the device (benchmarks: a model's
// worth of weights without generating gigabytes on the host). Deterministic for a seed.
void fill_random_weight(const DeviceWeight& w, uint64_t seed, cudaStream_t stream);

}  // namespace hcattn::cuda
