#include "kv/f16_rows.h"

#include "cpu/features.h"
#include "quant/types.h"

namespace hcattn::kv {

namespace {

float dot_f16_scalar(const float* q, const uint16_t* k, int d) {
  float s = 0;
  for (int i = 0; i < d; ++i) s += q[i] * quant::fp16_to_fp32(k[i]);
  return s;
}

void axpy_f16_scalar(float w, const uint16_t* v, float* out, int d) {
  for (int i = 0; i < d; ++i) out[i] += w * quant::fp16_to_fp32(v[i]);
}

bool use_avx2() {
  static const bool yes = cpu::simd_level() != cpu::SimdLevel::Scalar;
  return yes;
}

}  // namespace

float dot_f16(const float* q, const uint16_t* k, int d) {
  return use_avx2() ? dot_f16_avx2(q, k, d) : dot_f16_scalar(q, k, d);
}

void axpy_f16(float w, const uint16_t* v, float* out, int d) {
  if (use_avx2()) axpy_f16_avx2(w, v, out, d);
  else axpy_f16_scalar(w, v, out, d);
}

}  // namespace hcattn::kv
