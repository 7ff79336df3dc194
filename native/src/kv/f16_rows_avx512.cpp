// AVX-512 versions of the multi-head row functions (f16_rows.h): a row of d f16 values is d / 16 registers,
// the dot products of four rows with four heads are reduced together, and the weighted sums of up to 16
// registers' worth of heads stay in registers over all selected rows.
// GCC 12 reports the intrinsics' own _mm*_undefined_* placeholders as "maybe uninitialized".
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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

// Rows one at a time against each of `heads` heads; their scores go `stride` floats apart per head.
template <int R>
void dot_rows_single(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, int64_t stride,
                     float scale, float* out) {
  constexpr int d = 16 * R;
  for (int64_t i = 0; i < count; ++i) {
    __m512 k[R];
    load_row(rows + static_cast<int64_t>(index[i]) * d, k);
    for (int h = 0; h < heads; ++h) {
      __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q + h * d), k[0]);
      for (int c = 1; c < R; ++c) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * d + 16 * c), k[c], acc);
      out[h * stride + i] = scale * _mm512_reduce_add_ps(acc);
    }
  }
}

// The lane sums of 16 vectors as one: lanes 4h..4h+3 hold the sums of v[4h], ..., v[4h + 3]. Pairs, then
// quads within each 128-bit lane, then across lanes: 45 instructions where 16 separate reductions take 128.
inline __attribute__((always_inline)) __m512 sum_lanes16(const __m512 (&v)[16]) {
  __m512 pairs[8], quads[4];
  // Per 128-bit lane: [a0 + a2, b0 + b2, a1 + a3, b1 + b3].
  for (int i = 0; i < 8; ++i) pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  // Per 128-bit lane: the lane's sums of four vectors.
  for (int i = 0; i < 4; ++i)
    quads[i] = _mm512_add_ps(_mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(pairs[2 * i], pairs[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Lanes of two quads added pairwise, then once more: lane h ends up with the whole sums of quad h.
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(quads[0], quads[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(quads[2], quads[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Rows i..i+3 against four heads: 16 dot products summed together by sum_lanes16, whose lane h holds head
// h's four, stored where that head's scores of these rows go.
template <int R>
void dot_rows_4x4(const float* q, const uint16_t* rows, const int32_t* index, int64_t i, int64_t count, float scale, float* out) {
  constexpr int d = 16 * R;
  __m512 acc[16];
  for (int r = 0; r < 4; ++r) {
    __m512 k[R];
    load_row(rows + static_cast<int64_t>(index[i + r]) * d, k);
    for (int h = 0; h < 4; ++h) {
      __m512 a = _mm512_mul_ps(_mm512_loadu_ps(q + h * d), k[0]);
      for (int c = 1; c < R; ++c) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + h * d + 16 * c), k[c], a);
      acc[4 * h + r] = a;
    }
  }
  const __m512 sums = _mm512_mul_ps(sum_lanes16(acc), _mm512_set1_ps(scale));
  _mm_storeu_ps(out + i, _mm512_castps512_ps128(sums));
  _mm_storeu_ps(out + count + i, _mm512_extractf32x4_ps(sums, 1));
  _mm_storeu_ps(out + 2 * count + i, _mm512_extractf32x4_ps(sums, 2));
  _mm_storeu_ps(out + 3 * count + i, _mm512_extractf32x4_ps(sums, 3));
}

template <int R>
void dot_rows(const float* q, int heads, const uint16_t* rows, const int32_t* index, int64_t count, float scale, float* out) {
  constexpr int d = 16 * R;
  // Four heads and four rows at a time, the rest one by one.
  int h0 = 0;
  for (; h0 + 4 <= heads; h0 += 4) {
    int64_t i = 0;
    for (; i + 4 <= count; i += 4) dot_rows_4x4<R>(q + h0 * d, rows, index, i, count, scale, out + h0 * count);
    if (i < count) dot_rows_single<R>(q + h0 * d, 4, rows, index + i, count - i, count, scale, out + h0 * count + i);
  }
  if (h0 < heads) dot_rows_single<R>(q + h0 * d, heads - h0, rows, index, count, count, scale, out + h0 * count);
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
