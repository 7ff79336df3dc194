// Scalar activation conversions (the definition of the rounding; see activation.h) and the dispatch to
// the SIMD variant in activation_avx2.cpp. That one serves the AVX-512 level too: a 512-bit copy was
// measured at 0.30 vs 0.47 ns per element for Q8_0 (0.44 vs 0.52 for Q8_K), about 0.2 ms of a 150 ms
// 8B decode step, not worth a second implementation of every rounding rule.
#include "quant/activation.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace hcattn::quant {

namespace detail {
// Defined in the ISA-specific file, which is compiled only for x86-64.
#if defined(__x86_64__) || defined(_M_X64)
extern const ActivationKernels activation_avx2;
#endif
}  // namespace detail

namespace {

// Round to nearest, ties to even, independent of the current rounding mode: adding 1.5 * 2^23 leaves
// the integer part in the low mantissa bits (valid for |x| < 2^22; activations here are within ±128).
int round_half_even(float x) {
  const float shifted = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007FFFFF) - 0x00400000;
}

void q8_0_scalar(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    y[b].d = fp32_to_fp16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < QK; ++j) y[b].qs[j] = static_cast<int8_t>(round_half_even(x[j] * id));
  }
}

void q8_k_scalar(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    BlockQ8_K& out = y[b];
    if (amax == 0.0f) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; ++j) {
      const int q = round_half_even(iscale * x[j]);
      out.qs[j] = static_cast<int8_t>(q < 127 ? q : 127);
    }
    for (int k = 0; k < QK_K / 16; ++k) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += out.qs[16 * k + j];
      out.bsums[k] = static_cast<int16_t>(sum);
    }
    out.d = 1.0f / iscale;
  }
}

void f16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void bf16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

const ActivationKernels kScalar = {q8_0_scalar, q8_k_scalar, f16_scalar, bf16_scalar};

}  // namespace

const ActivationKernels& activation_kernels(cpu::SimdLevel level) {
  const cpu::SimdLevel best = cpu::simd_level();
  if (static_cast<int>(level) > static_cast<int>(best)) level = best;
#if defined(__x86_64__) || defined(_M_X64)
  if (static_cast<int>(level) >= static_cast<int>(cpu::SimdLevel::Avx2)) return detail::activation_avx2;
#endif
  return kScalar;
}

void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  activation_kernels(cpu::simd_level()).q8_0(x, y, n);
}

void quantize_row_q8_k(const float* x, BlockQ8_K* y, int64_t n) {
  activation_kernels(cpu::simd_level()).q8_k(x, y, n);
}

void convert_row_f16(const float* x, uint16_t* y, int64_t n) {
  activation_kernels(cpu::simd_level()).f16(x, y, n);
}

void convert_row_bf16(const float* x, uint16_t* y, int64_t n) {
  activation_kernels(cpu::simd_level()).bf16(x, y, n);
}

}  // namespace hcattn::quant
