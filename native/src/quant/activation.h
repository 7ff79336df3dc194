// F32 activation rows converted to the format a weight type is multiplied in (FORMATS.md §2.4): Q8_0
// for Q4_0/Q8_0 weights, Q8_K for K-quants, F16 / BF16 for F16 / BF16 weights. The rounding is
// llama.cpp's x86 build's, so the engine's products round where llama.cpp's do:
//   Q8_0: d = amax/127 stored as half; q = round_half_even(x * (127/amax)) (the multiplier is 127/amax,
//         not 1/half(d)).
//   Q8_K: max = the signed value of largest magnitude (the first on ties); iscale = -127/max;
//         q = min(127, round_half_even(iscale * x)); bsums[k] = sum of q[16k..16k+15]; d = 1/iscale.
//   F16 / BF16: round to nearest even (NaN stays NaN).
// Every SIMD variant produces bit-identical output to the scalar one (tested).
#pragma once
#include <cstdint>

#include "cpu/features.h"
#include "quant/types.h"

namespace hcattn::quant {

// n must be a multiple of 32 (Q8_0) or 256 (Q8_K); y holds n/32 resp. n/256 blocks.
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n);
void convert_row_f16(const float* x, uint16_t* y, int64_t n);
void convert_row_bf16(const float* x, uint16_t* y, int64_t n);

// One SIMD level's implementations of the four conversions above (for tests and benchmarks).
struct ActivationKernels {
  void (*q8_0)(const float* x, BlockQ8_0* y, int64_t n);
  void (*q8_k)(const float* x, BlockQ8_K* y, int64_t n);
  void (*f16)(const float* x, uint16_t* y, int64_t n);
  void (*bf16)(const float* x, uint16_t* y, int64_t n);
};

// The kernels of `level`; a level this build or CPU lacks gives the best one below it.
const ActivationKernels& activation_kernels(cpu::SimdLevel level);

}  // namespace hcattn::quant
