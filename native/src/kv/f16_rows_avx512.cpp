// AVX-512 versions of the multi-head row functions (f16_rows.h): a row of d f16 values is d / 16 registers,
// and the weighted sums of up to 16 registers' worth of heads stay in registers over all selected rows.
// GCC 12 reports the intrinsics' own _mm*_undefined_* placeholders as "maybe uninitialized".
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

#include "kv/f16_rows.h"

namespace hcattn::kv {

namespace {

constexpr int kMaxRegs = 16;  // row registers per head (d <= 256)

template <int R>
void load_row(const uint16_t* row, __m512 (&k)[R]) {
  for (int c = 0; c < R; ++c) k[c] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16 * c)));
}

template <int R>
void dot_rows(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, float scale, float* out) {
  constexpr int d = 16 * R;
  for (int64_t i = 0; i < count; ++i) {
    __m512 k[R];
    load_row(rows + static_cast<int64_t>(index[i]) * d, k);
    for (int h = 0; h < heads; ++h) {
      __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q + h * d), k[0]);
      for (int c = 1; c < R; ++c) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * d + 16 * c), k[c], acc);
      out[h * count + i] = scale * _mm512_reduce_add_ps(acc);
    }
  }
}

// H heads at a time, their sums in H * R registers.
template <int R, int H>
void weighted_rows_block(const float* w, int64_t count, const uint16_t* rows, const int32_t* index, float* out) {
  constexpr int d = 16 * R;
  __m512 acc[H][R];
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < R; ++c) acc[h][c] = _mm512_loadu_ps(out + h * d + 16 * c);
  for (int64_t i = 0; i < count; ++i) {
    __m512 k[R];
    load_row(rows + static_cast<int64_t>(index[i]) * d, k);
    for (int h = 0; h < H; ++h) {
      const __m512 wv = _mm512_set1_ps(w[h * count + i]);
      for (int c = 0; c < R; ++c) acc[h][c] = _mm512_fmadd_ps(wv, k[c], acc[h][c]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < R; ++c) _mm512_storeu_ps(out + h * d + 16 * c, acc[h][c]);
}

template <int R>
void weighted_rows(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, float* out) {
  constexpr int d = 16 * R, per_block = std::max(1, kMaxRegs / R);
  int h = 0;
  for (; h + per_block <= heads; h += per_block)
    weighted_rows_block<R, per_block>(w + h * count, count, rows, index, out + h * d);
  for (; h < heads; ++h) weighted_rows_block<R, 1>(w + h * count, count, rows, index, out + h * d);
}

}  // namespace

void dot_rows_f16_avx512(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                         float scale, float* out) {
  switch (d) {
    case 64: return dot_rows<4>(q, heads, rows, index, count, scale, out);
    case 128: return dot_rows<8>(q, heads, rows, index, count, scale, out);
    default: return dot_rows_f16_avx2(q, heads, rows, index, count, d, scale, out);
  }
}

void weighted_rows_f16_avx512(const float* w, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int d,
                              float* out) {
  switch (d) {
    case 64: return weighted_rows<4>(w, heads, rows, index, count, out);
    case 128: return weighted_rows<8>(w, heads, rows, index, count, out);
    default: return weighted_rows_f16_avx2(w, heads, rows, index, count, d, out);
  }
}

}  // namespace hcattn::kv
