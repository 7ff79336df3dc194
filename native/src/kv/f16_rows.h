// Dot products and weighted sums over f16 rows (the host tier's keys and values), and the exponentials of
// attention weights: the inner loops of exact re-scoring, value sums and the tail
// estimate. AVX-512 or F16C + FMA where the CPU has them, a scalar fallback elsewhere.
#pragma once
#include <cstdint>

namespace hcattn::kv {

// <q, k> for a row k of d f16 values.
float dot_f16(const float* q, const uint16_t* k, int d);
// out[i] += w * v[i] for a row v of d f16 values.
void axpy_f16(float w, const uint16_t* v, float* out, int d);

// The query heads of one KV head over the tokens a selection keeps (index: count row numbers), each row
// read once for all heads:
//   dot_rows_f16:      out[h * count + i] = scale * <q[h], row index[i]>   (q: heads rows of d floats)
//   weighted_rows_f16: out[h * d + c] += sum over i of w[h * count + i] * row index[i][c]
void dot_rows_f16(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d, float scale,
                  float* out);
void weighted_rows_f16(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                       float* out);

// x[i] = exp(x[i] - shift) in place; returns their sum. Relative error within a few float ulps.
double exp_shifted(float* x, int64_t n, float shift);
// sums[b] = sum of exp(x[j] - shift) over the j in [b * block, (b + 1) * block) with skip[j] == 0.
void block_exp_sums(const float* x, const uint8_t* skip, int64_t blocks, int block, float shift, double* sums);

// out[i] = in[i] as a float, i < n.
void f16_to_f32_row(const uint16_t* in, float* out, int64_t n);
// One group's LUT row from its centroids stored dimension-major (book: sub rows of c f16 values):
// out[k] = sum over j < sub of q[j] * book[j * c + k], k < c.
void lut_row_f16(const float* q, int sub, const uint16_t* book, int c, float* out);

// Highest of x[0, n) (n > 0).
float max_of(const float* x, int64_t n);
// out[j] = max over r < rows of (x[r * n + j] - shift[r]), j < n: the scores of the query heads of a KV
// head, each relative to its own top, merged for their shared selection.
void max_shifted_rows(const float* x, int rows, int64_t n, const float* shift, float* out);

float dot_f16_avx2(const float* q, const uint16_t* k, int d);
float max_of_avx2(const float* x, int64_t n);
void max_shifted_rows_avx2(const float* x, int rows, int64_t n, const float* shift, float* out);
void f16_to_f32_row_avx2(const uint16_t* in, float* out, int64_t n);
void lut_row_f16_avx2(const float* q, int sub, const uint16_t* book, int c, float* out);
void axpy_f16_avx2(float w, const uint16_t* v, float* out, int d);
void dot_rows_f16_avx2(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                       float scale, float* out);
void weighted_rows_f16_avx2(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                            float* out);
void dot_rows_f16_avx512(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                         float scale, float* out);
void weighted_rows_f16_avx512(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                              float* out);
double exp_shifted_avx2(float* x, int64_t n, float shift);
void block_exp_sums_avx2(const float* x, const uint8_t* skip, int64_t blocks, int block, float shift, double* sums);

}  // namespace hcattn::kv
