#include <immintrin.h>

#include <algorithm>

#include "cpu/matmul_x86.h"
#include "kv/f16_rows.h"
#include "quant/types.h"

namespace hcattn::kv {

namespace {

using cpu::hsum;

// e^x = 2^k * e^r with k = round(x / ln 2) and |r| <= ln 2 / 2, e^r by its Taylor polynomial of degree 6
// (error below 2e-7 relative); 0 below -87.3, where 2^k would leave the normal floats.
__m256 exp_ps(__m256 x) {
  const __m256 low = _mm256_set1_ps(-87.3f);
  const __m256 in_range = _mm256_cmp_ps(x, low, _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, low), _mm256_set1_ps(88.7f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(scale)), in_range);
}

// Rows longer than this go through the one-head functions.
constexpr int kMaxRow = 256;

// Row i of the selection as floats (d a multiple of 8).
void load_row(const uint16_t* rows, int32_t index, int d, float* out) {
  const uint16_t* r = rows + static_cast<int64_t>(index) * d;
  for (int c = 0; c < d; c += 8)
    _mm256_store_ps(out + c, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r + c))));
}

}  // namespace

float dot_f16_avx2(const float* q, const uint16_t* k, int d) {
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
  }
  float sum = hsum(acc);
  for (; i < d; ++i) sum += q[i] * quant::fp16_to_fp32(k[i]);
  return sum;
}

void dot_rows_f16_avx2(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                       float scale, float* out) {
  if (d % 8 != 0 || d > kMaxRow) {
    for (int64_t i = 0; i < count; ++i)
      for (int h = 0; h < heads; ++h)
        out[h * count + i] = scale * dot_f16_avx2(q + static_cast<int64_t>(h) * d, rows + static_cast<int64_t>(index[i]) * d, d);
    return;
  }
  alignas(32) float row[kMaxRow];
  for (int64_t i = 0; i < count; ++i) {
    load_row(rows, index[i], d, row);
    for (int h = 0; h < heads; ++h) {
      const float* qh = q + static_cast<int64_t>(h) * d;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int c = 0;
      for (; c + 16 <= d; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c), _mm256_load_ps(row + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c + 8), _mm256_load_ps(row + c + 8), a1);
      }
      if (c < d) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c), _mm256_load_ps(row + c), a0);
      out[h * count + i] = scale * hsum(_mm256_add_ps(a0, a1));
    }
  }
}

float max_of_avx2(const float* x, int64_t n) {
  float m = x[0];
  int64_t i = 0;
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    m = *std::max_element(lanes, lanes + 8);
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

void max_shifted_rows_avx2(const float* x, int rows, int64_t n, const float* shift, float* out) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 m = _mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_set1_ps(shift[0]));
    for (int r = 1; r < rows; ++r) m = _mm256_max_ps(m, _mm256_sub_ps(_mm256_loadu_ps(x + r * n + j), _mm256_set1_ps(shift[r])));
    _mm256_storeu_ps(out + j, m);
  }
  for (; j < n; ++j) {
    float m = x[j] - shift[0];
    for (int r = 1; r < rows; ++r) m = std::max(m, x[r * n + j] - shift[r]);
    out[j] = m;
  }
}

void f16_to_f32_row_avx2(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  for (; i < n; ++i) out[i] = quant::fp16_to_fp32(in[i]);
}

void lut_row_f16_avx2(const float* q, int sub, const uint16_t* book, int c, float* out) {
  int k = 0;
  for (; k + 8 <= c; k += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < sub; ++j) {
      const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(book + static_cast<int64_t>(j) * c + k)));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(q[j]), x, acc);
    }
    _mm256_storeu_ps(out + k, acc);
  }
  for (; k < c; ++k) {
    float s = 0;
    for (int j = 0; j < sub; ++j) s += q[j] * quant::fp16_to_fp32(book[static_cast<int64_t>(j) * c + k]);
    out[k] = s;
  }
}

void axpy_f16_avx2(float w, const uint16_t* v, float* out, int d) {
  const __m256 wv = _mm256_set1_ps(w);
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(wv, x, _mm256_loadu_ps(out + i)));
  }
  for (; i < d; ++i) out[i] += w * quant::fp16_to_fp32(v[i]);
}

void weighted_rows_f16_avx2(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                            float* out) {
  if (d % 8 != 0 || d > kMaxRow) {
    for (int64_t i = 0; i < count; ++i)
      for (int h = 0; h < heads; ++h)
        axpy_f16_avx2(w[h * count + i], rows + static_cast<int64_t>(index[i]) * d, out + static_cast<int64_t>(h) * d, d);
    return;
  }
  alignas(32) float row[kMaxRow];
  for (int64_t i = 0; i < count; ++i) {
    load_row(rows, index[i], d, row);
    for (int h = 0; h < heads; ++h) {
      const __m256 wv = _mm256_set1_ps(w[h * count + i]);
      float* oh = out + static_cast<int64_t>(h) * d;
      for (int c = 0; c < d; c += 8) _mm256_storeu_ps(oh + c, _mm256_fmadd_ps(wv, _mm256_load_ps(row + c), _mm256_loadu_ps(oh + c)));
    }
  }
}

double exp_shifted_avx2(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    sum_lo = _mm256_add_pd(sum_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum_hi = _mm256_add_pd(sum_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(sum_lo, sum_hi));
  double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) {
    alignas(32) float one[8] = {x[i] - shift};
    _mm256_store_ps(one, exp_ps(_mm256_load_ps(one)));
    sum += (x[i] = one[0]);
  }
  return sum;
}

void block_exp_sums_avx2(const float* x, const uint8_t* skip, int64_t blocks, int block, float shift, double* sums) {
  const __m256 s = _mm256_set1_ps(shift);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t from = b * block;
    __m256 acc = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= block; j += 8) {
      const __m128i flags = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(skip + from + j));
      const __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(flags), _mm256_setzero_si256()));
      acc = _mm256_add_ps(acc, _mm256_and_ps(keep, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + from + j), s))));
    }
    double t = hsum(acc);
    for (; j < block; ++j) {
      if (skip[from + j]) continue;
      alignas(32) float one[8] = {x[from + j] - shift};
      _mm256_store_ps(one, exp_ps(_mm256_load_ps(one)));
      t += one[0];
    }
    sums[b] = t;
  }
}

}  // namespace hcattn::kv
