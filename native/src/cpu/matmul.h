// Weight × activation products, the engine's hot loop. Weights stay in their GGUF block format; the
// activations are F32 and are quantized on the fly to the weight type's dot type where that is what
// llama.cpp does (Q8_0 for Q4_0/Q8_0, Q8_K for K-quants, F16 for F16, BF16 for BF16), so results match
// llama.cpp's rounding points. The kernel variant (AVX-512 VNNI / AVX2 / scalar) is chosen at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/threadpool.h"
#include "quant/types.h"

namespace hcattn::cpu {

// A 2-D weight: `rows` rows of `cols` elements (cols = ne[0], rows = ne[1] in GGUF terms).
struct WeightView {
  quant::GgmlType type = quant::GgmlType::F32;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
};

// y[t * w.rows + r] = dot(row r of w, x[t * w.cols ...]) for t in [0, n_tokens).
// n_tokens == 1 is the decode GEMV; larger n_tokens is the prefill GEMM (weights read once per tile).
// x and y must not overlap. Throws hcattn::Error for an unsupported type or an inconsistent view.
void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// One product of a matmul_group: y = w · x.
struct MatmulOut {
  const WeightView* w;
  float* y;
};

// Up to 3 products of the same activations (Q, K and V) in one pool dispatch: x is converted once per
// weight type and the rows of all weights are shared out together, so the threads meet once instead
// of once per weight. Each y equals what matmul() gives. All weights need the same cols.
void matmul_group(const MatmulOut* outs, int n_outs, const float* x, int64_t n_tokens, ThreadPool& pool);

// gate[i] = silu(gate[i]) · up[i], in float as ggml's reference: g / (1 + exp(-g)) · u.
void swiglu(float* gate, const float* up, int64_t n);

// The FFN's gate and up products and their SwiGLU in one dispatch: gate ← silu(w_gate · x) · (w_up · x),
// both (n_tokens, rows); up is scratch. Each chunk of rows gets its SwiGLU as soon as both of its
// products are done, on the thread that computed them. Equals matmul, matmul, swiglu bit for bit.
void matmul_swiglu(const WeightView& w_gate, const WeightView& w_up, const float* x, int64_t n_tokens, float* gate,
                   float* up, ThreadPool& pool);

// Straightforward reference of the same product (dequantize, quantize the activations the same way,
// dot in double): the oracle for kernel tests.
void matmul_reference(const WeightView& w, const float* x, int64_t n_tokens, float* y);

}  // namespace hcattn::cpu
