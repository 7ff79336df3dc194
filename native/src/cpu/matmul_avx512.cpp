// AVX-512 (F, BW, VL, DQ, VNNI) kernels.
//
// Decode (one token) is bound by memory bandwidth: each weight row is streamed once (with software
// prefetch), its codes are widened to unsigned bytes in a 256-bit register and multiplied with the Q8
// activations by one vpdpbusd per 32 elements; the block scales are applied in float.
//
// Prefill (several tokens) is bound by arithmetic: 16 weight rows at a time are unpacked once into a
// "panel" where one 512-bit register holds the same 4 consecutive codes of all 16 rows. A vpdpbusd of
// such a register with 4 activation bytes of one token broadcast to all lanes advances 16 dot
// products at once, and the panel is reused by every token, so unpacking costs nothing per token.
// Per 32-element block and token the 16 integer sums need one convert, one multiply (weight scales
// times the activation scale) and one FMA, against 8 vpdpbusd: the integer unit stays busy.
//
// The dpbusd instruction multiplies unsigned by signed bytes, so weight codes are made unsigned by an
// offset (Q4_0: the stored nibble, offset 8; Q8_0: code + 128; Q6_K: code + 32) and the offset times
// the activation sum is subtracted exactly in integers (PackedActs::block_bias, Q8_K bsums).

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own placeholder registers (GCC bug
// 105593, e.g. in _mm512_unpacklo_epi32); the warning is about the headers, not this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/matmul_kernels.h"
#include "cpu/matmul_x86.h"

namespace hcattn::cpu {

using quant::GgmlType;

namespace {

constexpr int kPanelRows = 16;

int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ---- Weight codes of 32 consecutive elements as unsigned bytes, in element order. ----

// Q4_0 block: the stored nibbles (value = (code - 8) * d). The 16 bytes go to both halves; the upper
// half is shifted right by 4 (in 64-bit lanes: the bits that cross into the neighbouring byte land
// in its high nibble, which the mask clears).
__m256i codes_q4_0(const uint8_t* blk) {
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
  return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

// Q8_0 block: code + 128.
__m256i codes_q8_0(const uint8_t* blk) {
  return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                          _mm256_set1_epi8(static_cast<char>(0x80)));
}

// Q4_K sub-block j (elements 32j..32j+31): nibble (j odd: high) of qs[32*(j/2) + l].
__m256i codes_q4_k(const uint8_t* qs, int j) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (j / 2)));
  return _mm256_and_si256(shift_right_16(v, 4 * (j & 1)), _mm256_set1_epi8(0x0F));
}

// Q5_K sub-block j: the Q4_K nibble plus 16 where bit j of qh[l] is set.
__m256i codes_q5_k(const uint8_t* qh, const uint8_t* qs, int j) {
  const __m256i low = codes_q4_k(qs, j);
  const __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
  const __mmask32 set = _mm256_test_epi8_mask(high, _mm256_set1_epi8(static_cast<char>(1 << j)));
  return _mm256_or_si256(low, _mm256_maskz_mov_epi8(set, _mm256_set1_epi8(16)));
}

// ---- Decode: one token, rows streamed once. ----

// The half scales of 8 consecutive Q4_0 blocks (18 bytes apart, so 16-bit words 0, 9, ..., 63 of the
// 128 bytes that start at the first block) times the activation scales.
__m256 q4_0_scales8(const uint8_t* blk, const float* act_scale) {
  const __m512i lo = _mm512_loadu_si512(blk), hi = _mm512_loadu_si512(blk + 64);
  const __m512i words = _mm512_permutex2var_epi16(lo, _mm512_setr_epi32(9 << 16, (27 << 16) | 18, (45 << 16) | 36, (63 << 16) | 54,
                                                                        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), hi);
  return _mm256_mul_ps(_mm256_cvtph_ps(_mm512_castsi512_si128(words)), _mm256_loadu_ps(act_scale));
}


// One row at a time: the matrix is then read as one sequential stream, which measured faster than
// several interleaved rows sharing the activation loads (40% on 4096-wide rows).
template <GgmlType kType>
void gemv_legacy(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
  const int64_t nb = w.cols / quant::QK;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
    // Four accumulators, so that consecutive blocks do not wait for each other's FMA (its latency, not
    // the arithmetic, would otherwise bound the loop).
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    auto block = [&](int64_t b, int k, __m256 scale) {
      const __m256i act = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.rows + b * sizeof(quant::BlockQ8_0) + 2));
      // Lane 0 starts at -offset * sum(act), which turns the unsigned-code dot into the signed one.
      const __m256i bias = _mm256_zextsi128_si256(_mm_cvtsi32_si128(a.block_bias[b]));
      const uint8_t* blk = row + b * kBlockBytes;
      const __m256i codes = kType == GgmlType::Q4_0 ? codes_q4_0(blk) : codes_q8_0(blk);
      const __m256i dot = _mm256_dpbusd_epi32(bias, codes, act);
      acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc[k]);
    };
    auto scalar_scale = [&](int64_t b) { return _mm256_set1_ps(half_to_float(row + b * kBlockBytes) * a.block_scale[b]); };
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
      const uint8_t* blk = row + b * kBlockBytes;
      if (kType == GgmlType::Q4_0) {
        prefetch_lines(blk, 3);  // 8 blocks: 144 bytes
        // Scales eight blocks at a time (one permute instead of eight scalar half conversions).
        const __m256 scales = q4_0_scales8(blk, a.block_scale + b);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) block(b + j, j & 3, _mm256_permutexvar_ps(_mm256_set1_epi32(j), scales));
      } else {
        prefetch_lines(blk, 5);  // 8 blocks: 272 bytes
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) block(b + j, j & 3, scalar_scale(b + j));
      }
    }
    for (; b < nb; ++b) block(b, 0, scalar_scale(b));
    y[r] = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

// The 6-bit scales and mins of a Q4_K / Q5_K super-block rearranged (FORMATS.md §2.3) so that bytes
// 0-7 are sc0..sc7 and bytes 8-15 are mn0..mn7: a dozen word operations instead of sixteen byte
// extractions.
__m128i k4_scales_mins(const uint8_t* s) {
  constexpr uint32_t kLow6 = 0x3F3F3F3F, kLow4 = 0x0F0F0F0F, kLow2 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, s, 12);
  u[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);  // mn4..7
  const uint32_t mins_low = u[1] & kLow6;                         // mn0..3
  u[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);           // sc4..7
  u[0] &= kLow6;                                                  // sc0..3
  u[2] = mins_low;
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
}

template <bool kFifthBit>
void gemv_k4_k5(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  constexpr size_t kBlockBytes = kFifthBit ? sizeof(quant::BlockQ5_K) : sizeof(quant::BlockQ4_K);
  const int64_t nsb = w.cols / quant::QK_K;
  const auto* base = static_cast<const uint8_t*>(w.data);
  const auto* act = reinterpret_cast<const quant::BlockQ8_K*>(a.rows);
  // Each min twice, to pair with the two 16-element sums of its 32-element sub-block.
  const __m128i dup_mins = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = base + r * w.row_bytes;
    float sum = 0.0f;
    for (int64_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = row + s * kBlockBytes;
      prefetch_lines(blk, 3);
      const uint8_t* qs = kFifthBit ? blk + 48 : blk + 16;
      const __m128i scales_mins = k4_scales_mins(blk + 4);
      const __m256i sc = _mm256_cvtepu8_epi32(scales_mins);
      // mins: lane j = mn_j * (bsums[2j] + bsums[2j+1]), scaled by dmin * d_act.
      const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scales_mins, dup_mins));
      const __m256i mins = _mm256_madd_epi16(mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[s].bsums)));
      const __m256i high = kFifthBit ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)) : _mm256_setzero_si256();
      __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        // Sub-blocks 2i (low nibbles) and 2i+1 (high nibbles) share 32 bytes of qs.
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * i));
        __m256i lo = _mm256_and_si256(v, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        if (kFifthBit) {
          const __mmask32 lo_set = _mm256_test_epi8_mask(high, _mm256_set1_epi8(static_cast<char>(1 << (2 * i))));
          const __mmask32 hi_set = _mm256_test_epi8_mask(high, _mm256_set1_epi8(static_cast<char>(2 << (2 * i))));
          lo = _mm256_mask_add_epi8(lo, lo_set, lo, _mm256_set1_epi8(16));
          hi = _mm256_mask_add_epi8(hi, hi_set, hi, _mm256_set1_epi8(16));
        }
        const __m256i q8lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[s].qs + 64 * i));
        const __m256i q8hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[s].qs + 64 * i + 32));
        const __m256i dlo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, q8lo);
        const __m256i dhi = _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, q8hi);
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(dlo, _mm256_permutexvar_epi32(_mm256_set1_epi32(2 * i), sc)));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(dhi, _mm256_permutexvar_epi32(_mm256_set1_epi32(2 * i + 1), sc)));
      }
      sum = k4_step(sum, half_to_float(blk), half_to_float(blk + 2), act[s].d, hsum_i32(isum), hsum_i32(mins));
    }
    y[r] = sum;
  }
}

void gemv_q6_k(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nsb = w.cols / quant::QK_K;
  const auto* base = static_cast<const uint8_t*>(w.data);
  const auto* act = reinterpret_cast<const quant::BlockQ8_K*>(a.rows);
  // Byte shuffle that spreads scales 2c and 2c+1 over 4 bytes each (added to 2c per chunk).
  const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t r = r0; r < r1; ++r) {
    const auto* row = reinterpret_cast<const quant::BlockQ6_K*>(base + r * w.row_bytes);
    float sum = 0.0f;
    for (int64_t s = 0; s < nsb; ++s) {
      const quant::BlockQ6_K& blk = row[s];
      prefetch_lines(reinterpret_cast<const uint8_t*>(&blk), 4);
      const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales));
      __m256i isum = _mm256_setzero_si256();
      for (int c = 0; c < 8; ++c) {
        const __m256i codes = codes_q6_k(&blk, c);
        const __m256i q8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[s].qs + 32 * c));
        const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), codes, q8);
        const __m128i idx = _mm_add_epi8(spread, _mm_set1_epi8(static_cast<char>(2 * c)));
        const __m256i sc = _mm256_cvtepi8_epi32(_mm_shuffle_epi8(scales, idx));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(dot, sc));
      }
      int ibias = 0;
      for (int k = 0; k < 16; ++k) ibias += blk.scales[k] * act[s].bsums[k];
      sum = q6_step(sum, _cvtsh_ss(blk.d), act[s].d, hsum_i32(isum) - 32 * ibias);  // codes were +32
    }
    y[r] = sum;
  }
}

// ---- Float weights (F32, F16, BF16): tiles of 4 rows x NT tokens, 16 elements per step. ----

struct LoadF32 {
  static __m512 full(const uint8_t* p) { return _mm512_loadu_ps(p); }
  static __m512 part(const uint8_t* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static constexpr size_t kBytes = 4;
};
struct LoadF16 {
  static __m512 full(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 part(const uint8_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static constexpr size_t kBytes = 2;
};
struct LoadBF16 {
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 full(const uint8_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 part(const uint8_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
  static constexpr size_t kBytes = 2;
};

template <class L, int NT>
void float_tile(const WeightView& w, const PackedActs& a, int64_t r, int64_t nr, int64_t t0, float* y) {
  constexpr int NR = 4;
  const uint8_t* wrow[NR];
  const uint8_t* arow[NT];
  // Rows past the end repeat the last valid row; their sums are computed and dropped.
  for (int k = 0; k < NR; ++k) wrow[k] = static_cast<const uint8_t*>(w.data) + (r + std::min<int64_t>(k, nr - 1)) * w.row_bytes;
  for (int j = 0; j < NT; ++j) arow[j] = a.rows + (t0 + j) * a.row_bytes;
  __m512 acc[NR][NT];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= w.cols; i += 16) {
    __m512 av[NT];
    for (int j = 0; j < NT; ++j) av[j] = L::full(arow[j] + i * L::kBytes);
    for (int k = 0; k < NR; ++k) {
      const __m512 wv = L::full(wrow[k] + i * L::kBytes);
      for (int j = 0; j < NT; ++j) acc[k][j] = _mm512_fmadd_ps(wv, av[j], acc[k][j]);
    }
  }
  if (i < w.cols) {
    const __mmask16 m = static_cast<__mmask16>((1u << (w.cols - i)) - 1);
    __m512 av[NT];
    for (int j = 0; j < NT; ++j) av[j] = L::part(arow[j] + i * L::kBytes, m);
    for (int k = 0; k < NR; ++k) {
      const __m512 wv = L::part(wrow[k] + i * L::kBytes, m);
      for (int j = 0; j < NT; ++j) acc[k][j] = _mm512_fmadd_ps(wv, av[j], acc[k][j]);
    }
  }
  for (int k = 0; k < nr; ++k)
    for (int j = 0; j < NT; ++j) y[(t0 + j) * w.rows + r + k] = _mm512_reduce_add_ps(acc[k][j]);
}

template <class L>
void float_kernel(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += 4) {
    const int64_t nt = std::min<int64_t>(4, a.n_tokens - t0);
    for (int64_t r = r0; r < r1; r += 4) {
      const int64_t nr = std::min<int64_t>(4, r1 - r);
      switch (nt) {
        case 1: float_tile<L, 1>(w, a, r, nr, t0, y); break;
        case 2: float_tile<L, 2>(w, a, r, nr, t0, y); break;
        case 3: float_tile<L, 3>(w, a, r, nr, t0, y); break;
        default: float_tile<L, 4>(w, a, r, nr, t0, y); break;
      }
    }
  }
}

// ---- Prefill: panels of 16 rows. ----

// Per-thread panel storage, 64-byte aligned (the tile kernels use aligned loads), reused across calls.
struct alignas(64) CacheLine {
  uint8_t bytes[64];
};
uint8_t* panel_storage(size_t bytes) {
  thread_local std::vector<CacheLine> storage;
  const size_t n = (bytes + 63) / 64;
  if (storage.size() < n) storage.resize(n);
  return storage.data()->bytes;
}

// Writes the panel layout out[g] (g = group of 4 elements, 64 bytes each) whose lane k is dword g of
// v[k]: a 16 x 8 transpose, done as two 8 x 8 transposes (rows 0-7 and 8-15), one per 256-bit half.
void transpose_rows_to_panel(const __m256i v[kPanelRows], uint8_t* out) {
  __m512i r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm512_inserti64x4(_mm512_zextsi256_si512(v[i]), v[i + 8], 1);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[g] (g < 4), per 128-bit lane: group g (lanes 0, 2) or g + 4 (lanes 1, 3) of rows 0-3 (8-11);
  // u[g + 4] the same for rows 4-7 (12-15).
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h + 0], t[4 * h + 2]);
    u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h + 0], t[4 * h + 2]);
    u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
    u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
  }
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int g = 0; g < 4; ++g) {
    _mm512_store_si512(out + 64 * g, _mm512_permutex2var_epi64(u[g], first, u[g + 4]));
    _mm512_store_si512(out + 64 * (g + 4), _mm512_permutex2var_epi64(u[g], second, u[g + 4]));
  }
}

// Legacy panel, per 32-element block b: codes [8 groups][16 rows] (u8 x4), then 16 float scales.
constexpr size_t kLegacyPanelBlock = 8 * kPanelRows * 4 + kPanelRows * 4;

template <GgmlType kType>
void unpack_legacy_panel(const WeightView& w, int64_t r, int nr, uint8_t* panel) {
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ8_0);
  const int64_t nb = w.cols / quant::QK;
  const auto* base = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    auto* scales = reinterpret_cast<float*>(panel + b * kLegacyPanelBlock + 8 * kPanelRows * 4);
    __m256i v[kPanelRows];
    for (int k = 0; k < kPanelRows; ++k) {
      v[k] = _mm256_setzero_si256();
      scales[k] = 0.0f;
      if (k < nr) {
        const uint8_t* blk = base + k * w.row_bytes + b * kBlockBytes;
        v[k] = kType == GgmlType::Q4_0 ? codes_q4_0(blk) : codes_q8_0(blk);
        scales[k] = half_to_float(blk);
      }
    }
    transpose_rows_to_panel(v, panel + b * kLegacyPanelBlock);
  }
}

template <int T>
void legacy_tile(const uint8_t* panel, int64_t nb, const PackedActs& a, int64_t t0, float* y, int64_t ldy,
                 __mmask16 store_mask) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const uint8_t* act = a.rows + t0 * a.row_bytes + 2;
  const float* act_scale = a.block_scale + t0 * nb;
  const int32_t* act_bias = a.block_bias + t0 * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + b * kLegacyPanelBlock;
    __m512i isum[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) isum[t] = _mm512_set1_epi32(act_bias[t * nb + b]);
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) {
      const __m512i codes = _mm512_load_si512(pb + g * 64);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512i q8 = _mm512_set1_epi32(load_i32(act + t * a.row_bytes + b * sizeof(quant::BlockQ8_0) + 4 * g));
        isum[t] = _mm512_dpbusd_epi32(isum[t], codes, q8);
      }
    }
    const __m512 wscale = _mm512_load_ps(pb + 8 * 64);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 scale = _mm512_mul_ps(wscale, _mm512_set1_ps(act_scale[t * nb + b]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), scale, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy, store_mask, acc[t]);
}

constexpr int kLegacyTokens = 8;  // tokens per tile: 8 sums + 8 accumulators + 8 code registers

template <GgmlType kType>
void gemm_legacy(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  const int64_t nb = w.cols / quant::QK;
  uint8_t* panel = panel_storage(nb * kLegacyPanelBlock);
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, r1 - r));
    const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
    unpack_legacy_panel<kType>(w, r, nr, panel);
    int64_t t0 = 0;
    for (; t0 + kLegacyTokens <= a.n_tokens; t0 += kLegacyTokens) legacy_tile<kLegacyTokens>(panel, nb, a, t0, y + r, w.rows, mask);
    switch (a.n_tokens - t0) {
      case 1: legacy_tile<1>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 2: legacy_tile<2>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 3: legacy_tile<3>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 4: legacy_tile<4>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 5: legacy_tile<5>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 6: legacy_tile<6>(panel, nb, a, t0, y + r, w.rows, mask); break;
      case 7: legacy_tile<7>(panel, nb, a, t0, y + r, w.rows, mask); break;
      default: break;
    }
  }
}

// K-quant panel, per super-block: codes [8 chunks][8 groups][16 rows]; integer scales [16][16] (Q4_K /
// Q5_K use the first 8, one per 32 elements; Q6_K all 16, one per 16 elements); bias multipliers
// [8][16] as int16 pairs matching the activation bsums pairs (Q4_K/Q5_K: (mn_j, mn_j); Q6_K:
// (sc_2i, sc_2i+1)); then float d[16] and dmin[16] (Q6_K: unused) with
//   Q4_K/Q5_K: sum = d * isum - dmin * ibias;   Q6_K: sum = d * (isum - 32 * ibias).
// The float steps round as the scalar kernel's do (no fused multiply-adds), see k_tile.
constexpr size_t kKCodes = 8 * 8 * kPanelRows * 4;
constexpr size_t kKScales = kKCodes;
constexpr size_t kKBias = kKScales + 16 * kPanelRows * 4;
constexpr size_t kKD = kKBias + 8 * kPanelRows * 4;
constexpr size_t kKDmin = kKD + kPanelRows * 4;
constexpr size_t kKPanelBlock = kKDmin + kPanelRows * 4;

template <GgmlType kType>
void unpack_k_panel(const WeightView& w, int64_t r, int nr, uint8_t* panel) {
  const int64_t nsb = w.cols / quant::QK_K;
  const auto* base = static_cast<const uint8_t*>(w.data) + r * w.row_bytes;
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_K ? sizeof(quant::BlockQ4_K)
                                 : kType == GgmlType::Q5_K ? sizeof(quant::BlockQ5_K)
                                                           : sizeof(quant::BlockQ6_K);
  for (int64_t s = 0; s < nsb; ++s) {
    uint8_t* p = panel + s * kKPanelBlock;
    auto* scales = reinterpret_cast<int32_t*>(p + kKScales);
    auto* bias = reinterpret_cast<uint32_t*>(p + kKBias);
    auto* d = reinterpret_cast<float*>(p + kKD);
    auto* dmin = reinterpret_cast<float*>(p + kKDmin);
    for (int c = 0; c < 8; ++c) {
      __m256i v[kPanelRows];
      for (int k = 0; k < kPanelRows; ++k) {
        v[k] = _mm256_setzero_si256();
        if (k >= nr) continue;
        const uint8_t* blk = base + k * w.row_bytes + s * kBlockBytes;
        if (kType == GgmlType::Q6_K) {
          const auto* q6 = reinterpret_cast<const quant::BlockQ6_K*>(blk);
          v[k] = codes_q6_k(q6, c);
        } else if (kType == GgmlType::Q5_K) {
          v[k] = codes_q5_k(blk + 16, blk + 48, c);
        } else {
          v[k] = codes_q4_k(blk + 16, c);
        }
      }
      transpose_rows_to_panel(v, p + c * 8 * kPanelRows * 4);
    }
    for (int k = 0; k < kPanelRows; ++k) {
      for (int j = 0; j < 16; ++j) scales[j * kPanelRows + k] = 0;
      for (int i = 0; i < 8; ++i) bias[i * kPanelRows + k] = 0;
      d[k] = dmin[k] = 0.0f;
      if (k >= nr) continue;
      const uint8_t* blk = base + k * w.row_bytes + s * kBlockBytes;
      if (kType == GgmlType::Q6_K) {
        const auto* q6 = reinterpret_cast<const quant::BlockQ6_K*>(blk);
        for (int j = 0; j < 16; ++j) scales[j * kPanelRows + k] = q6->scales[j];
        for (int i = 0; i < 8; ++i) {
          bias[i * kPanelRows + k] = static_cast<uint16_t>(q6->scales[2 * i]) |
                                     (static_cast<uint32_t>(static_cast<uint16_t>(q6->scales[2 * i + 1])) << 16);
        }
        d[k] = _cvtsh_ss(q6->d);
      } else {
        int sc[8], mn[8];
        unpack_k4_scales(blk + 4, sc, mn);
        for (int j = 0; j < 8; ++j) scales[j * kPanelRows + k] = sc[j];
        for (int i = 0; i < 8; ++i) bias[i * kPanelRows + k] = static_cast<uint32_t>(mn[i]) * 0x10001u;
        d[k] = half_to_float(blk);
        dmin[k] = half_to_float(blk + 2);
      }
    }
  }
}

// Float products, sums and differences rounded once each, never contracted into an FMA by the
// compiler (the embedded-rounding forms are opaque to it).
constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
__m512 mul_unfused(__m512 a, __m512 b) { return _mm512_mul_round_ps(a, b, kNearest); }
__m512 add_unfused(__m512 a, __m512 b) { return _mm512_add_round_ps(a, b, kNearest); }
__m512 sub_unfused(__m512 a, __m512 b) { return _mm512_sub_round_ps(a, b, kNearest); }

template <int T, bool kSixBit>
void k_tile(const uint8_t* panel, int64_t nsb, const PackedActs& a, int64_t t0, float* y, int64_t ldy,
            __mmask16 store_mask) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  const uint8_t* act = a.rows + t0 * a.row_bytes;
  for (int64_t s = 0; s < nsb; ++s) {
    const uint8_t* p = panel + s * kKPanelBlock;
    const uint8_t* act_s = act + s * sizeof(quant::BlockQ8_K);
    __m512i isum[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
    for (int c = 0; c < 8; ++c) {
      __m512i codes[8];
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) codes[g] = _mm512_load_si512(p + (c * 8 + g) * 64);
      const int32_t* scales = reinterpret_cast<const int32_t*>(p + kKScales);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const uint8_t* q8 = act_s + t * a.row_bytes + 4 + 32 * c;
        if (kSixBit) {
          __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int g = 0; g < 4; ++g) {
            lo = _mm512_dpbusd_epi32(lo, codes[g], _mm512_set1_epi32(load_i32(q8 + 4 * g)));
            hi = _mm512_dpbusd_epi32(hi, codes[g + 4], _mm512_set1_epi32(load_i32(q8 + 16 + 4 * g)));
          }
          lo = _mm512_mullo_epi32(lo, _mm512_load_si512(scales + (2 * c) * kPanelRows));
          hi = _mm512_mullo_epi32(hi, _mm512_load_si512(scales + (2 * c + 1) * kPanelRows));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_add_epi32(lo, hi));
        } else {
          __m512i sub = _mm512_setzero_si512();
#pragma GCC unroll 8
          for (int g = 0; g < 8; ++g) sub = _mm512_dpbusd_epi32(sub, codes[g], _mm512_set1_epi32(load_i32(q8 + 4 * g)));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(sub, _mm512_load_si512(scales + c * kPanelRows)));
        }
      }
    }
    const __m512 d = _mm512_load_ps(p + kKD), dmin = _mm512_load_ps(p + kKDmin);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const auto* blk = reinterpret_cast<const quant::BlockQ8_K*>(act_s + t * a.row_bytes);
      __m512i ibias = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m512i pairs = _mm512_load_si512(p + kKBias + i * 64);
        ibias = _mm512_dpwssd_epi32(ibias, pairs, _mm512_set1_epi32(load_i32(reinterpret_cast<const uint8_t*>(blk->bsums + 2 * i))));
      }
      // The super-block's float arithmetic is the scalar kernel's, operation for operation and without
      // fused multiply-adds, so that each lane rounds exactly as the scalar and one-token paths do. A
      // prompt's hidden state then does not depend on how it was batched: a last-bit difference would
      // otherwise flip a round-half-even decision of the next Q8_K quantization (one activation step,
      // max/127, which with an outlier channel is large) and move log-probabilities by up to 3e-2.
      const __m512 act_d = _mm512_set1_ps(blk->d);
      const __m512 d_eff = mul_unfused(d, act_d);
      if (kSixBit) {
        const __m512i signed_sum = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(ibias, 5));  // codes were +32
        acc[t] = add_unfused(acc[t], mul_unfused(d_eff, _mm512_cvtepi32_ps(signed_sum)));
      } else {
        const __m512 dmin_eff = mul_unfused(dmin, act_d);
        const __m512 sum = sub_unfused(mul_unfused(d_eff, _mm512_cvtepi32_ps(isum[t])),
                                       mul_unfused(dmin_eff, _mm512_cvtepi32_ps(ibias)));
        acc[t] = add_unfused(acc[t], sum);
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy, store_mask, acc[t]);
}

constexpr int kKTokens = 6;

template <GgmlType kType>
void gemm_k(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  constexpr bool kSix = kType == GgmlType::Q6_K;
  const int64_t nsb = w.cols / quant::QK_K;
  uint8_t* panel = panel_storage(nsb * kKPanelBlock);
  for (int64_t r = r0; r < r1; r += kPanelRows) {
    const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, r1 - r));
    const __mmask16 mask = static_cast<__mmask16>((1u << nr) - 1);
    unpack_k_panel<kType>(w, r, nr, panel);
    int64_t t0 = 0;
    for (; t0 + kKTokens <= a.n_tokens; t0 += kKTokens) k_tile<kKTokens, kSix>(panel, nsb, a, t0, y + r, w.rows, mask);
    switch (a.n_tokens - t0) {
      case 1: k_tile<1, kSix>(panel, nsb, a, t0, y + r, w.rows, mask); break;
      case 2: k_tile<2, kSix>(panel, nsb, a, t0, y + r, w.rows, mask); break;
      case 3: k_tile<3, kSix>(panel, nsb, a, t0, y + r, w.rows, mask); break;
      case 4: k_tile<4, kSix>(panel, nsb, a, t0, y + r, w.rows, mask); break;
      case 5: k_tile<5, kSix>(panel, nsb, a, t0, y + r, w.rows, mask); break;
      default: break;
    }
  }
}

// Token t of the activations as a one-token view.
PackedActs token_view(const PackedActs& a, int64_t t) {
  PackedActs one = a;
  one.n_tokens = 1;
  one.rows = a.rows + t * a.row_bytes;
  const int64_t blocks = a.cols / quant::QK;
  if (a.block_scale) one.block_scale = a.block_scale + t * blocks;
  if (a.block_bias) one.block_bias = a.block_bias + t * blocks;
  return one;
}

// Few tokens: stream the rows once per token; from kMinPanelTokens on (measured: 3 for Q4_0 / Q8_0,
// 5 for K-quants), widening the rows into panels once pays for itself.
template <RowsKernel kGemv, RowsKernel kGemm, int kMinPanelTokens>
void quant_kernel(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  if (a.n_tokens >= kMinPanelTokens) {
    kGemm(w, a, r0, r1, y);
    return;
  }
  for (int64_t t = 0; t < a.n_tokens; ++t) kGemv(w, token_view(a, t), r0, r1, y + t * w.rows);
}

}  // namespace

RowsKernel rows_kernel_avx512(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return float_kernel<LoadF32>;
    case GgmlType::F16: return float_kernel<LoadF16>;
    case GgmlType::BF16: return float_kernel<LoadBF16>;
    case GgmlType::Q4_0: return quant_kernel<gemv_legacy<GgmlType::Q4_0>, gemm_legacy<GgmlType::Q4_0>, 3>;
    case GgmlType::Q8_0: return quant_kernel<gemv_legacy<GgmlType::Q8_0>, gemm_legacy<GgmlType::Q8_0>, 3>;
    case GgmlType::Q4_K: return quant_kernel<gemv_k4_k5<false>, gemm_k<GgmlType::Q4_K>, 5>;
    case GgmlType::Q5_K: return quant_kernel<gemv_k4_k5<true>, gemm_k<GgmlType::Q5_K>, 5>;
    case GgmlType::Q6_K: return quant_kernel<gemv_q6_k, gemm_k<GgmlType::Q6_K>, 5>;
    default: return nullptr;
  }
}

}  // namespace hcattn::cpu
