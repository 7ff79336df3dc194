// Internal interface between the matmul driver (matmul.cpp) and its per-ISA kernels
// (matmul_scalar.cpp, matmul_avx2.cpp, matmul_avx512.cpp). Engine code calls matmul() (cpu/matmul.h);
// only tests and the kernel benchmark reach in here, for matmul_at_level() and matmul_group_at_level().
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/features.h"
#include "cpu/matmul.h"
#include "cpu/threadpool.h"
#include "quant/kquant_scales.h"
#include "quant/types.h"

namespace hcattn::cpu {

// The activations of all tokens, converted once per matmul to the weight type's dot format.
struct PackedActs {
  quant::GgmlType dot_type = quant::GgmlType::F32;  // F32, F16, BF16, Q8_0 or Q8_K
  int64_t n_tokens = 0;
  int64_t cols = 0;
  const uint8_t* rows = nullptr;  // token t's row at rows + t * row_bytes (F32: the caller's x)
  size_t row_bytes = 0;
  // Q8_0 only, per token and 32-block (index t * cols/32 + b): the block's scale as float, and
  // -offset * (sum of its qs), where offset is what the kernels add to the weight codes to make them
  // unsigned for the u8 x s8 dot instructions (8 for Q4_0, 128 for Q8_0). Adding this to the
  // unsigned dot restores the signed one exactly.
  const float* block_scale = nullptr;
  const int32_t* block_bias = nullptr;
};

// Computes y[t * w.rows + r] for rows [r0, r1) and every token.
using RowsKernel = void (*)(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y);

// A level's kernel for weight type `t`, or nullptr when that level has none for it (the driver then
// uses the level below).
RowsKernel rows_kernel_scalar(quant::GgmlType t);
RowsKernel rows_kernel_avx2(quant::GgmlType t);
RowsKernel rows_kernel_avx512(quant::GgmlType t);

// matmul() at a given SIMD level (clamped to what the CPU supports): how tests reach every level
// from one process.
void matmul_at_level(SimdLevel level, const WeightView& w, const float* x, int64_t n_tokens, float* y,
                     ThreadPool& pool);
void matmul_group_at_level(SimdLevel level, const MatmulOut* outs, int n_outs, const float* x, int64_t n_tokens,
                           ThreadPool& pool);

// The weight codes' unsigned offset for the Q8_0-activation types (see PackedActs::block_bias).
inline int legacy_code_offset(quant::GgmlType t) { return t == quant::GgmlType::Q4_0 ? 8 : 128; }

// The eight 6-bit scales and mins of a Q4_K / Q5_K super-block, as the dequantizer reads them.
using quant::unpack_k4_scales;

}  // namespace hcattn::cpu
