#include "kv/f16_rows.h"

#include <algorithm>
#include <cmath>

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

void dot_rows_f16_scalar(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                         float scale, float* out) {
  for (int64_t i = 0; i < count; ++i)
    for (int h = 0; h < heads; ++h)
      out[h * count + i] = scale * dot_f16_scalar(q + static_cast<int64_t>(h) * d, rows + static_cast<int64_t>(index[i]) * d, d);
}

void weighted_rows_f16_scalar(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                              float* out) {
  for (int64_t i = 0; i < count; ++i)
    for (int h = 0; h < heads; ++h)
      axpy_f16_scalar(w[h * count + i], rows + static_cast<int64_t>(index[i]) * d, out + static_cast<int64_t>(h) * d, d);
}

double exp_shifted_scalar(float* x, int64_t n, float shift) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

void block_exp_sums_scalar(const float* x, const uint8_t* skip, int64_t blocks, int block, float shift, double* sums) {
  for (int64_t b = 0; b < blocks; ++b) {
    double t = 0;
    for (int64_t j = b * block; j < (b + 1) * block; ++j)
      if (!skip[j]) t += std::exp(x[j] - shift);
    sums[b] = t;
  }
}

void f16_to_f32_row_scalar(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = quant::fp16_to_fp32(in[i]);
}

void lut_row_f16_scalar(const float* q, int sub, const uint16_t* book, int c, float* out) {
  for (int k = 0; k < c; ++k) {
    float s = 0;
    for (int j = 0; j < sub; ++j) s += q[j] * quant::fp16_to_fp32(book[static_cast<int64_t>(j) * c + k]);
    out[k] = s;
  }
}

float max_of_scalar(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

void max_shifted_rows_scalar(const float* x, int rows, int64_t n, const float* shift, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] - shift[0];
  for (int r = 1; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) out[j] = std::max(out[j], x[r * n + j] - shift[r]);
}

bool use_avx2() {
  static const bool yes = cpu::simd_level() != cpu::SimdLevel::Scalar;
  return yes;
}

bool use_avx512() {
  static const bool yes = cpu::simd_level() == cpu::SimdLevel::Avx512;
  return yes;
}

}  // namespace

float dot_f16(const float* q, const uint16_t* k, int d) {
  return use_avx2() ? dot_f16_avx2(q, k, d) : dot_f16_scalar(q, k, d);
}

void f16_to_f32_row(const uint16_t* in, float* out, int64_t n) {
  if (use_avx2()) f16_to_f32_row_avx2(in, out, n);
  else f16_to_f32_row_scalar(in, out, n);
}

void lut_row_f16(const float* q, int sub, const uint16_t* book, int c, float* out) {
  if (use_avx2()) lut_row_f16_avx2(q, sub, book, c, out);
  else lut_row_f16_scalar(q, sub, book, c, out);
}

float max_of(const float* x, int64_t n) { return use_avx2() ? max_of_avx2(x, n) : max_of_scalar(x, n); }

void max_shifted_rows(const float* x, int rows, int64_t n, const float* shift, float* out) {
  if (use_avx2()) max_shifted_rows_avx2(x, rows, n, shift, out);
  else max_shifted_rows_scalar(x, rows, n, shift, out);
}

void axpy_f16(float w, const uint16_t* v, float* out, int d) {
  if (use_avx2()) axpy_f16_avx2(w, v, out, d);
  else axpy_f16_scalar(w, v, out, d);
}

void dot_rows_f16(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d, float scale,
                  float* out) {
  if (use_avx512()) dot_rows_f16_avx512(q, heads, rows, index, count, d, scale, out);
  else if (use_avx2()) dot_rows_f16_avx2(q, heads, rows, index, count, d, scale, out);
  else dot_rows_f16_scalar(q, heads, rows, index, count, d, scale, out);
}

void weighted_rows_f16(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                       float* out) {
  if (use_avx512()) weighted_rows_f16_avx512(w, heads, rows, index, count, d, out);
  else if (use_avx2()) weighted_rows_f16_avx2(w, heads, rows, index, count, d, out);
  else weighted_rows_f16_scalar(w, heads, rows, index, count, d, out);
}

double exp_shifted(float* x, int64_t n, float shift) {
  return use_avx2() ? exp_shifted_avx2(x, n, shift) : exp_shifted_scalar(x, n, shift);
}

void block_exp_sums(const float* x, const uint8_t* skip, int64_t blocks, int block, float shift, double* sums) {
  if (use_avx2()) block_exp_sums_avx2(x, skip, blocks, block, shift, sums);
  else block_exp_sums_scalar(x, skip, blocks, block, shift, sums);
}

}  // namespace hcattn::kv
