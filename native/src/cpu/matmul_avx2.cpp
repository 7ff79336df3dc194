// AVX2 + FMA + F16C kernels, for CPUs without AVX-512.
//
// Decode and short prompts (under 4 tokens), and the float types: the rows of a chunk are taken 16 at
// a time (their weights, ~40 KB for Q4_0 at 4096 columns, stay in L2), and for each group of up to 4
// tokens every row's blocks are widened once and multiplied with all 4 tokens' activations.
// Prefill of the quantized types: 8-row panels, one row per 32-bit lane, against broadcast activation
// bytes (the AVX-512 scheme at half the width).
// Integer products use vpmaddubsw (unsigned x signed bytes to 16-bit pair sums) and vpmaddwd (to 32
// bits, applying an integer sub-block scale where the format has one); scales are applied in float
// per block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/matmul_kernels.h"
#include "cpu/matmul_x86.h"

namespace hcattn::cpu {

using quant::GgmlType;

namespace {

constexpr int kRowChunk = 16;
constexpr int kTokenTile = 4;

// Sum of 32 products of unsigned codes (each < 128, so the 16-bit pair sums cannot saturate) and
// signed activation bytes, in 8 int32 lanes, each pair sum multiplied by the 16-bit `scale` lanes.
__m256i dot_u8_s8(__m256i codes, __m256i act, __m256i scale16) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, act), scale16);
}

// ---- Q4_0 / Q8_0 with Q8_0 activations ----

template <GgmlType kType, int T>
void row_legacy(const uint8_t* row, const PackedActs& a, int64_t t0, int64_t nb, float* y, int64_t ldy) {
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
  const __m256i ones = _mm256_set1_epi16(1);
  // Two accumulator sets, for even and odd blocks: with one token a single chain of FMAs would be
  // bound by their latency rather than by the arithmetic.
  __m256 acc[2][T];
  for (auto& set : acc)
    for (auto& v : set) v = _mm256_setzero_ps();
  auto step = [&](int64_t b, int k) {
    const uint8_t* blk = row + b * kBlockBytes;
    if ((b & 3) == 0) prefetch_lines(blk, kType == GgmlType::Q4_0 ? 2 : 3);  // 72 / 136 bytes
    const float dw = half_to_float(blk);
    __m256i codes, sign_src;
    if (kType == GgmlType::Q4_0) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
      codes = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                               _mm256_set1_epi8(0x0F));
      sign_src = codes;
    } else {
      // Signed weights: |w| times the activation with w's sign moved onto it.
      sign_src = load256(blk + 2);
      codes = _mm256_sign_epi8(sign_src, sign_src);
    }
    for (int t = 0; t < T; ++t) {
      const int64_t tb = (t0 + t) * nb + b;
      const __m256i q8 = load256(a.rows + (t0 + t) * a.row_bytes + b * sizeof(quant::BlockQ8_0) + 2);
      __m256i dot;
      if (kType == GgmlType::Q4_0) {
        // Codes are offset by 8; the bias restores the signed sum exactly.
        dot = _mm256_add_epi32(dot_u8_s8(codes, q8, ones), _mm256_setr_epi32(a.block_bias[tb], 0, 0, 0, 0, 0, 0, 0));
      } else {
        dot = _mm256_madd_epi16(_mm256_maddubs_epi16(codes, _mm256_sign_epi8(q8, sign_src)), ones);
      }
      acc[k][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * a.block_scale[tb]), acc[k][t]);
    }
  };
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    step(b, 0);
    step(b + 1, 1);
  }
  if (b < nb) step(b, 0);
  for (int t = 0; t < T; ++t) y[t * ldy] = hsum(_mm256_add_ps(acc[0][t], acc[1][t]));
}

// ---- K-quant codes of 32 consecutive elements as unsigned bytes, in element order ----

// Q4_K / Q5_K sub-block j: nibble (j odd: high) of qs[32*(j/2) + l], plus 16 where bit j of qh[l] is
// set (Q5_K's fifth bits; nullptr for Q4_K).
__m256i codes_k4_k5(const uint8_t* qs, const uint8_t* qh, int j) {
  __m256i codes = _mm256_and_si256(shift_right_16(load256(qs + 32 * (j / 2)), 4 * (j & 1)), _mm256_set1_epi8(0x0F));
  if (qh) {
    const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << j));
    codes = _mm256_or_si256(codes, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(load256(qh), bit), bit),
                                                    _mm256_set1_epi8(16)));
  }
  return codes;
}

// ---- K-quants with Q8_K activations ----

template <bool kFifthBit, int T>
void row_k4_k5(const uint8_t* row, const PackedActs& a, int64_t t0, int64_t nsb, float* y, int64_t ldy) {
  constexpr size_t kBlockBytes = kFifthBit ? sizeof(quant::BlockQ5_K) : sizeof(quant::BlockQ4_K);
  float sum[T];
  for (int t = 0; t < T; ++t) sum[t] = 0.0f;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* blk = row + s * kBlockBytes;
    prefetch_lines(blk, 3);
    const uint8_t* qs = kFifthBit ? blk + 48 : blk + 16;
    int sc[8], mn[8];
    unpack_k4_scales(blk + 4, sc, mn);
    const quant::BlockQ8_K* act[T];
    for (int t = 0; t < T; ++t) act[t] = reinterpret_cast<const quant::BlockQ8_K*>(a.rows + (t0 + t) * a.row_bytes) + s;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i codes = codes_k4_k5(qs, kFifthBit ? blk + 16 : nullptr, j);
      const __m256i scale = _mm256_set1_epi16(static_cast<int16_t>(sc[j]));
      for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], dot_u8_s8(codes, load256(act[t]->qs + 32 * j), scale));
    }
    const float d = half_to_float(blk), dmin = half_to_float(blk + 2);
    for (int t = 0; t < T; ++t) {
      int imin = 0;
      for (int j = 0; j < 8; ++j) imin += mn[j] * (act[t]->bsums[2 * j] + act[t]->bsums[2 * j + 1]);
      sum[t] = k4_step(sum[t], d, dmin, act[t]->d, hsum_i32(isum[t]), imin);
    }
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = sum[t];
}

template <int T>
void row_q6_k(const uint8_t* row, const PackedActs& a, int64_t t0, int64_t nsb, float* y, int64_t ldy) {
  float sum[T];
  for (int t = 0; t < T; ++t) sum[t] = 0.0f;
  for (int64_t s = 0; s < nsb; ++s) {
    const auto* blk = reinterpret_cast<const quant::BlockQ6_K*>(row) + s;
    prefetch_lines(reinterpret_cast<const uint8_t*>(blk), 4);
    const quant::BlockQ8_K* act[T];
    for (int t = 0; t < T; ++t) act[t] = reinterpret_cast<const quant::BlockQ8_K*>(a.rows + (t0 + t) * a.row_bytes) + s;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      const __m256i codes = codes_q6_k(blk, c);
      // The first 16 elements use scale 2c, the next 16 scale 2c+1.
      const __m256i scale = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(blk->scales[2 * c])),
                                                    _mm_set1_epi16(blk->scales[2 * c + 1]), 1);
      for (int t = 0; t < T; ++t) isum[t] = _mm256_add_epi32(isum[t], dot_u8_s8(codes, load256(act[t]->qs + 32 * c), scale));
    }
    const float d = _cvtsh_ss(blk->d);
    for (int t = 0; t < T; ++t) {
      int ibias = 0;
      for (int k = 0; k < 16; ++k) ibias += blk->scales[k] * act[t]->bsums[k];
      sum[t] = q6_step(sum[t], d, act[t]->d, hsum_i32(isum[t]) - 32 * ibias);  // codes were +32
    }
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = sum[t];
}

// ---- F32 / F16 / BF16 with activations of the same type ----

struct LoadF32 {
  static __m256 load(const uint8_t* p, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i); }
  static float scalar(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static __m256 load(const uint8_t* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
  }
  static float scalar(const uint8_t* p, int64_t i) { return _cvtsh_ss(load_u16(p + 2 * i)); }
};
struct LoadBF16 {
  static __m256 load(const uint8_t* p, int64_t i) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float scalar(const uint8_t* p, int64_t i) { return quant::bf16_to_fp32(load_u16(p + 2 * i)); }
};

template <class L, int T>
void row_float(const uint8_t* row, const PackedActs& a, int64_t t0, int64_t cols, float* y, int64_t ldy) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const uint8_t* act[T];
  for (int t = 0; t < T; ++t) act[t] = a.rows + (t0 + t) * a.row_bytes;
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    const __m256 wv = L::load(row, i);
    for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(wv, L::load(act[t], i), acc[t]);
  }
  for (int t = 0; t < T; ++t) {
    float sum = hsum(acc[t]);
    for (int64_t k = i; k < cols; ++k) sum += L::scalar(row, k) * L::scalar(act[t], k);
    y[t * ldy] = sum;
  }
}

// ---- The shared loop: row chunks of 16, token tiles of up to 4. ----

using RowFn = void (*)(const uint8_t* row, const PackedActs& a, int64_t t0, int64_t n, float* y, int64_t ldy);

template <RowFn k1, RowFn k2, RowFn k3, RowFn k4, int kElemsPerUnit>
void rows_kernel(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  const RowFn by_tokens[] = {k1, k2, k3, k4};
  const int64_t units = w.cols / kElemsPerUnit;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t rc = r0; rc < r1; rc += kRowChunk) {
    const int64_t rc_end = std::min(r1, rc + kRowChunk);
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokenTile) {
      const RowFn fn = by_tokens[std::min<int64_t>(kTokenTile, a.n_tokens - t0) - 1];
      for (int64_t r = rc; r < rc_end; ++r) fn(base + r * w.row_bytes, a, t0, units, y + t0 * w.rows + r, w.rows);
    }
  }
}

// ---- Prefill of Q4_0 / Q8_0: panels of 8 rows, one row per 32-bit lane ----
//
// As in the AVX-512 kernels: a panel register holds the same 4 consecutive codes of 8 rows, and one
// activation dword of a token is broadcast against it. Q4_0 codes (0..15) keep vpmaddubsw's pair
// sums below 3810, so the 8 groups of a block are summed in 16 bits before one vpmaddwd; Q8_0 uses
// |w| and the activation with w's sign and widens every group.

constexpr int kPanel8 = 8;
// Per 32-element block: codes [8 groups][8 rows] (Q8_0: |w|, then w itself [8][8]), 8 float scales.
template <GgmlType kType>
constexpr size_t kPanel8Block = (kType == GgmlType::Q4_0 ? 1 : 2) * 8 * kPanel8 * 4 + kPanel8 * 4;

template <GgmlType kType>
void unpack_panel8(const WeightView& w, int64_t r, int nr, uint8_t* panel) {
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
  constexpr size_t kCodes = 8 * kPanel8 * 4;
  const int64_t nb = w.cols / quant::QK;
  const auto* base = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* p = panel + b * kPanel8Block<kType>;
    auto* codes = reinterpret_cast<uint32_t*>(p);
    auto* signs = reinterpret_cast<uint32_t*>(p + kCodes);
    auto* scales = reinterpret_cast<float*>(p + kPanel8Block<kType> - kPanel8 * 4);
    for (int k = 0; k < kPanel8; ++k) {
      alignas(32) uint32_t c[8] = {}, sg[8] = {};
      scales[k] = 0.0f;
      if (k < nr) {
        const uint8_t* blk = base + k * w.row_bytes + b * kBlockBytes;
        scales[k] = half_to_float(blk);
        if (kType == GgmlType::Q4_0) {
          const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
          const __m256i v = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                                             _mm256_set1_epi8(0x0F));
          _mm256_store_si256(reinterpret_cast<__m256i*>(c), v);
        } else {
          const __m256i v = load256(blk + 2);
          _mm256_store_si256(reinterpret_cast<__m256i*>(c), _mm256_sign_epi8(v, v));
          _mm256_store_si256(reinterpret_cast<__m256i*>(sg), v);
        }
      }
      for (int g = 0; g < 8; ++g) {
        codes[g * kPanel8 + k] = c[g];
        if (kType == GgmlType::Q8_0) signs[g * kPanel8 + k] = sg[g];
      }
    }
  }
}

template <GgmlType kType, int T>
void panel8_tile(const uint8_t* panel, int64_t nb, const PackedActs& a, int64_t t0, float* y, int64_t ldy, int nr) {
  constexpr size_t kCodes = 8 * kPanel8 * 4;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const uint8_t* act = a.rows + t0 * a.row_bytes + 2;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = panel + b * kPanel8Block<kType>;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int g = 0; g < 8; ++g) {
      const __m256i codes = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32 * g));
      for (int t = 0; t < T; ++t) {
        int32_t q4;
        std::memcpy(&q4, act + t * a.row_bytes + b * sizeof(quant::BlockQ8_0) + 4 * g, 4);
        const __m256i q8 = _mm256_set1_epi32(q4);
        if (kType == GgmlType::Q4_0) {
          isum[t] = _mm256_add_epi16(isum[t], _mm256_maddubs_epi16(codes, q8));
        } else {
          const __m256i signs = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + kCodes + 32 * g));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(codes, _mm256_sign_epi8(q8, signs)), ones));
        }
      }
    }
    const __m256 wscale = _mm256_load_ps(reinterpret_cast<const float*>(p + kPanel8Block<kType> - kPanel8 * 4));
    for (int t = 0; t < T; ++t) {
      const int64_t tb = (t0 + t) * nb + b;
      __m256i dot = isum[t];
      if (kType == GgmlType::Q4_0) {
        dot = _mm256_add_epi32(_mm256_madd_epi16(dot, ones), _mm256_set1_epi32(a.block_bias[tb]));
      }
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(wscale, _mm256_set1_ps(a.block_scale[tb])), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[t]);
    for (int k = 0; k < nr; ++k) y[(t0 + t) * ldy + k] = out[k];
  }
}

// Per-thread panel storage, 32-byte aligned for the aligned loads above.
uint8_t* panel8_storage(size_t bytes) {
  struct alignas(32) Line {
    uint8_t bytes[32];
  };
  thread_local std::vector<Line> storage;
  const size_t n = (bytes + 31) / 32;
  if (storage.size() < n) storage.resize(n);
  return storage.data()->bytes;
}

template <GgmlType kType>
void gemm_panel8(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  constexpr int kTokens = 4;
  const int64_t nb = w.cols / quant::QK;
  uint8_t* panel = panel8_storage(nb * kPanel8Block<kType>);
  for (int64_t r = r0; r < r1; r += kPanel8) {
    const int nr = static_cast<int>(std::min<int64_t>(kPanel8, r1 - r));
    unpack_panel8<kType>(w, r, nr, panel);
    int64_t t0 = 0;
    for (; t0 + kTokens <= a.n_tokens; t0 += kTokens) panel8_tile<kType, kTokens>(panel, nb, a, t0, y + r, w.rows, nr);
    switch (a.n_tokens - t0) {
      case 1: panel8_tile<kType, 1>(panel, nb, a, t0, y + r, w.rows, nr); break;
      case 2: panel8_tile<kType, 2>(panel, nb, a, t0, y + r, w.rows, nr); break;
      case 3: panel8_tile<kType, 3>(panel, nb, a, t0, y + r, w.rows, nr); break;
      default: break;
    }
  }
}

// ---- Prefill of K-quants: panels of 8 rows ----
//
// Per super-block: codes [8 chunks][8 groups][8 rows]; per sub-block an (sc, sc) int16 pair per row
// (Q4_K/Q5_K: 8 sub-blocks of 32, Q6_K: 16 of 16); bias multipliers [8][8 rows] as int16 pairs that
// pair with the activation bsums (Q4_K/Q5_K: (mn_j, mn_j), Q6_K: (sc_2i, sc_2i+1)); float d[8] and
// dmin[8] (Q6_K: unused) with sum = d * isum - dmin * ibias (Q6_K: d * (isum - 32 * ibias)). vpmaddubsw pair sums are added
// in 16 bits for as many groups as cannot overflow: 8 for Q4_K (codes < 16), 4 for Q5_K (< 32), 2 for
// Q6_K (< 64), then widened by vpmaddwd with the sub-block scale.
constexpr size_t kK8Codes = 8 * 8 * kPanel8 * 4;
constexpr size_t kK8Scales = kK8Codes;
constexpr size_t kK8Bias = kK8Scales + 16 * kPanel8 * 4;
constexpr size_t kK8D = kK8Bias + 8 * kPanel8 * 4;
constexpr size_t kK8Dmin = kK8D + kPanel8 * 4;
constexpr size_t kK8Block = kK8Dmin + kPanel8 * 4;

uint32_t int16_pair(int lo, int hi) {
  return static_cast<uint16_t>(static_cast<int16_t>(lo)) | (static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(hi))) << 16);
}

template <GgmlType kType>
void unpack_k_panel8(const WeightView& w, int64_t r, int nr, uint8_t* panel) {
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_K ? sizeof(quant::BlockQ4_K)
                                 : kType == GgmlType::Q5_K ? sizeof(quant::BlockQ5_K)
                                                           : sizeof(quant::BlockQ6_K);
  const int64_t nsb = w.cols / quant::QK_K;
  const auto* base = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  for (int64_t s = 0; s < nsb; ++s) {
    uint8_t* p = panel + s * kK8Block;
    auto* codes = reinterpret_cast<uint32_t*>(p);
    auto* scales = reinterpret_cast<uint32_t*>(p + kK8Scales);
    auto* bias = reinterpret_cast<uint32_t*>(p + kK8Bias);
    auto* d = reinterpret_cast<float*>(p + kK8D);
    auto* dmin = reinterpret_cast<float*>(p + kK8Dmin);
    for (int k = 0; k < kPanel8; ++k) {
      alignas(32) uint32_t c[8];
      const uint8_t* blk = base + k * w.row_bytes + s * kBlockBytes;
      for (int ch = 0; ch < 8; ++ch) {
        __m256i v = _mm256_setzero_si256();
        if (k < nr) {
          v = kType == GgmlType::Q6_K ? codes_q6_k(reinterpret_cast<const quant::BlockQ6_K*>(blk), ch)
                                      : codes_k4_k5(kType == GgmlType::Q5_K ? blk + 48 : blk + 16,
                                                    kType == GgmlType::Q5_K ? blk + 16 : nullptr, ch);
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(c), v);
        for (int g = 0; g < 8; ++g) codes[(ch * 8 + g) * kPanel8 + k] = c[g];
      }
      for (int j = 0; j < 16; ++j) scales[j * kPanel8 + k] = 0;
      for (int i = 0; i < 8; ++i) bias[i * kPanel8 + k] = 0;
      d[k] = dmin[k] = 0.0f;
      if (k >= nr) continue;
      if (kType == GgmlType::Q6_K) {
        const auto* q6 = reinterpret_cast<const quant::BlockQ6_K*>(blk);
        for (int j = 0; j < 16; ++j) scales[j * kPanel8 + k] = int16_pair(q6->scales[j], q6->scales[j]);
        for (int i = 0; i < 8; ++i) bias[i * kPanel8 + k] = int16_pair(q6->scales[2 * i], q6->scales[2 * i + 1]);
        d[k] = _cvtsh_ss(q6->d);
      } else {
        int sc[8], mn[8];
        unpack_k4_scales(blk + 4, sc, mn);
        for (int j = 0; j < 8; ++j) scales[j * kPanel8 + k] = int16_pair(sc[j], sc[j]);
        for (int i = 0; i < 8; ++i) bias[i * kPanel8 + k] = int16_pair(mn[i], mn[i]);
        d[k] = half_to_float(blk);
        dmin[k] = half_to_float(blk + 2);
      }
    }
  }
}

template <GgmlType kType, int T>
void k_panel8_tile(const uint8_t* panel, int64_t nsb, const PackedActs& a, int64_t t0, float* y, int64_t ldy, int nr) {
  constexpr int kGroups16 = kType == GgmlType::Q4_K ? 8 : kType == GgmlType::Q5_K ? 4 : 2;
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* p = panel + s * kK8Block;
    const quant::BlockQ8_K* act[T];
    for (int t = 0; t < T; ++t) act[t] = reinterpret_cast<const quant::BlockQ8_K*>(a.rows + (t0 + t) * a.row_bytes) + s;
    __m256i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      for (int g0 = 0; g0 < 8; g0 += kGroups16) {
        const int sub = kType == GgmlType::Q6_K ? 2 * c + g0 / 4 : c;
        const __m256i scale = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + kK8Scales + sub * 32));
        for (int t = 0; t < T; ++t) {
          __m256i s16 = _mm256_setzero_si256();
          for (int g = g0; g < g0 + kGroups16; ++g) {
            const __m256i codes = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + (c * 8 + g) * 32));
            int32_t q4;
            std::memcpy(&q4, act[t]->qs + 32 * c + 4 * g, 4);
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(codes, _mm256_set1_epi32(q4)));
          }
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16, scale));
        }
      }
    }
    const __m256 d = _mm256_load_ps(reinterpret_cast<const float*>(p + kK8D));
    const __m256 dmin = _mm256_load_ps(reinterpret_cast<const float*>(p + kK8Dmin));
    for (int t = 0; t < T; ++t) {
      __m256i ibias = _mm256_setzero_si256();
      for (int i = 0; i < 8; ++i) {
        int32_t pair;
        std::memcpy(&pair, act[t]->bsums + 2 * i, 4);
        const __m256i mult = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + kK8Bias + i * 32));
        ibias = _mm256_add_epi32(ibias, _mm256_madd_epi16(mult, _mm256_set1_epi32(pair)));
      }
      // k4_step / q6_step for 8 rows at once.
      const __m256 act_d = _mm256_set1_ps(act[t]->d);
      const __m256 d_eff = unfused(_mm256_mul_ps(d, act_d));
      if (kType == GgmlType::Q6_K) {
        const __m256i signed_sum = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(ibias, 5));  // codes were +32
        acc[t] = _mm256_add_ps(acc[t], unfused(_mm256_mul_ps(d_eff, _mm256_cvtepi32_ps(signed_sum))));
      } else {
        const __m256 dmin_eff = unfused(_mm256_mul_ps(dmin, act_d));
        const __m256 sum = _mm256_sub_ps(unfused(_mm256_mul_ps(d_eff, _mm256_cvtepi32_ps(isum[t]))),
                                         unfused(_mm256_mul_ps(dmin_eff, _mm256_cvtepi32_ps(ibias))));
        acc[t] = _mm256_add_ps(acc[t], sum);
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[t]);
    for (int k = 0; k < nr; ++k) y[(t0 + t) * ldy + k] = out[k];
  }
}

template <GgmlType kType>
void gemm_k_panel8(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  constexpr int kTokens = 4;
  const int64_t nsb = w.cols / quant::QK_K;
  uint8_t* panel = panel8_storage(nsb * kK8Block);
  for (int64_t r = r0; r < r1; r += kPanel8) {
    const int nr = static_cast<int>(std::min<int64_t>(kPanel8, r1 - r));
    unpack_k_panel8<kType>(w, r, nr, panel);
    int64_t t0 = 0;
    for (; t0 + kTokens <= a.n_tokens; t0 += kTokens) k_panel8_tile<kType, kTokens>(panel, nsb, a, t0, y + r, w.rows, nr);
    switch (a.n_tokens - t0) {
      case 1: k_panel8_tile<kType, 1>(panel, nsb, a, t0, y + r, w.rows, nr); break;
      case 2: k_panel8_tile<kType, 2>(panel, nsb, a, t0, y + r, w.rows, nr); break;
      case 3: k_panel8_tile<kType, 3>(panel, nsb, a, t0, y + r, w.rows, nr); break;
      default: break;
    }
  }
}

// Below a few tokens, widening a panel costs more than it saves: the rows are streamed instead.
template <RowsKernel kRows, RowsKernel kPanels>
void rows_or_panels(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  if (a.n_tokens < 4) {
    kRows(w, a, r0, r1, y);
  } else {
    kPanels(w, a, r0, r1, y);
  }
}

template <GgmlType kType>
constexpr RowsKernel legacy_kernel = rows_or_panels<
    rows_kernel<row_legacy<kType, 1>, row_legacy<kType, 2>, row_legacy<kType, 3>, row_legacy<kType, 4>, quant::QK>,
    gemm_panel8<kType>>;
template <bool kFifthBit>
constexpr RowsKernel k4_k5_kernel = rows_or_panels<
    rows_kernel<row_k4_k5<kFifthBit, 1>, row_k4_k5<kFifthBit, 2>, row_k4_k5<kFifthBit, 3>, row_k4_k5<kFifthBit, 4>, quant::QK_K>,
    gemm_k_panel8<kFifthBit ? GgmlType::Q5_K : GgmlType::Q4_K>>;
constexpr RowsKernel q6_k_kernel = rows_or_panels<
    rows_kernel<row_q6_k<1>, row_q6_k<2>, row_q6_k<3>, row_q6_k<4>, quant::QK_K>, gemm_k_panel8<GgmlType::Q6_K>>;
template <class L>
constexpr RowsKernel float_kernel = rows_kernel<row_float<L, 1>, row_float<L, 2>, row_float<L, 3>, row_float<L, 4>, 1>;

}  // namespace

RowsKernel rows_kernel_avx2(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return float_kernel<LoadF32>;
    case GgmlType::F16: return float_kernel<LoadF16>;
    case GgmlType::BF16: return float_kernel<LoadBF16>;
    case GgmlType::Q4_0: return legacy_kernel<GgmlType::Q4_0>;
    case GgmlType::Q8_0: return legacy_kernel<GgmlType::Q8_0>;
    case GgmlType::Q4_K: return k4_k5_kernel<false>;
    case GgmlType::Q5_K: return k4_k5_kernel<true>;
    case GgmlType::Q6_K: return q6_k_kernel;
    default: return nullptr;
  }
}

}  // namespace hcattn::cpu
