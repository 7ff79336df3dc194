// Dot products and weighted sums over f16 rows (the host tier's keys and values): the inner loops of
// exact re-scoring and value sums. F16C + FMA where the CPU has them, a scalar fallback elsewhere.
#pragma once
#include <cstdint>

namespace hcattn::kv {

// <q, k> for a row k of d f16 values.
float dot_f16(const float* q, const uint16_t* k, int d);
// out[i] += w * v[i] for a row v of d f16 values.
void axpy_f16(float w, const uint16_t* v, float* out, int d);

float dot_f16_avx2(const float* q, const uint16_t* k, int d);
void axpy_f16_avx2(float w, const uint16_t* v, float* out, int d);

}  // namespace hcattn::kv
