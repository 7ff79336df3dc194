// The 8-bit path of score_code_tiles (code_tiles.h). Per head, each group's LUT is rounded to 8 bits with
// one step for all groups (so the byte sums of a token add up in one unit) and one offset per group (the
// group's minimum, summed once). A group's 256 bytes are 4 registers: two vpermi2b look up the 64 codes'
// low 7 bits in the lower and upper halves, their bit 7 picks one. The residual levels (4 bits) go through
// vpshufb in a 16-byte table per group, rounded up so the bound stays a bound.
// GCC 12 reports the intrinsics' own _mm*_undefined_* placeholders as "maybe uninitialized".
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "kv/code_tiles.h"
#include "kv/codebook.h"

namespace hcattn::kv {

namespace {

// Which residual levels of a head's bound tables are unbounded (+infinity).
enum class Unbounded { None, TopLevel, Table };  // none; exactly the last level (the usual case); per table

// The byte tables of one head.
struct HeadTables {
  float base = 0;        // sum over groups of the group's LUT minimum
  float step = 0;        // LUT units per byte step
  float bound_step = 0;  // bound units per byte step
  float error = 0;       // most the scaled byte score can differ from the scaled float sum
  Unbounded unbounded = Unbounded::None;
};

// Byte sums over the groups of one tile for one head: the LUT bytes of the 64 codes (two 32-lane 16-bit
// halves), their bound bytes, and which codes are unbounded. The last level is compared rather than looked up
// when it alone is unbounded (three instructions fewer per group).
template <Unbounded kMode>
__mmask64 sum_tile(const uint8_t* tile, const uint8_t* level_plane, int groups, const uint8_t* lut, const uint8_t* bound,
                   const uint8_t* infinite, __m512i& sum_lo, __m512i& sum_hi, __m512i& slack_lo, __m512i& slack_hi) {
  constexpr int kLevels = KeyCodebook::kLevels;
  __m512i unbounded = _mm512_setzero_si512();
  __mmask64 top = 0;
  const __m512i last = _mm512_set1_epi8(kLevels - 1);
  for (int grp = 0; grp < groups; ++grp) {
    const __m512i index = _mm512_loadu_si512(tile + static_cast<size_t>(grp) * kCodeTile);
    const uint8_t* row = lut + grp * 256;
    const __m512i lower = _mm512_permutex2var_epi8(_mm512_loadu_si512(row), index, _mm512_loadu_si512(row + 64));
    const __m512i upper_half = _mm512_permutex2var_epi8(_mm512_loadu_si512(row + 128), index, _mm512_loadu_si512(row + 192));
    const __m512i value = _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), lower, upper_half);
    sum_lo = _mm512_add_epi16(sum_lo, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(value)));
    sum_hi = _mm512_add_epi16(sum_hi, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(value, 1)));

    const __m512i level = _mm512_loadu_si512(&level_plane[static_cast<size_t>(grp) * kCodeTile]);
    const __m512i b =
        _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bound + grp * kLevels))), level);
    slack_lo = _mm512_add_epi16(slack_lo, _mm512_cvtepu8_epi16(_mm512_castsi512_si256(b)));
    slack_hi = _mm512_add_epi16(slack_hi, _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(b, 1)));
    if constexpr (kMode == Unbounded::TopLevel) top |= _mm512_cmpeq_epi8_mask(level, last);
    if constexpr (kMode == Unbounded::Table)
      unbounded = _mm512_or_si512(
          unbounded, _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(infinite + grp * kLevels))),
                                         level));
  }
  if constexpr (kMode == Unbounded::Table) return _mm512_test_epi8_mask(unbounded, unbounded);
  return top;
}

// The 64 levels of a level plane (32 bytes: position i in the low nibble of byte i, i + 32 in the high one).
__m512i unpack_levels(const uint8_t* plane) {
  const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(plane));
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i low = _mm256_and_si256(packed, mask), high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
  return _mm512_inserti64x4(_mm512_zextsi256_si512(low), high, 1);
}

// The 16-bit lanes of half `q` (0..3, 16 tokens each) of a pair of 32-lane accumulators, as floats.
__m512 quarter(__m512i lo, __m512i hi, int q) {
  const __m512i a = q < 2 ? lo : hi;
  const __m256i half = (q & 1) ? _mm512_extracti64x4_epi64(a, 1) : _mm512_castsi512_si256(a);
  return _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(half));
}

// Lowest and highest of a LUT row of c floats.
std::pair<float, float> row_range(const float* row, int c) {
  int k = 0;
  float lo = row[0], hi = row[0];
  if (c >= 16) {
    __m512 vlo = _mm512_loadu_ps(row), vhi = vlo;
    for (k = 16; k + 16 <= c; k += 16) {
      const __m512 x = _mm512_loadu_ps(row + k);
      vlo = _mm512_min_ps(vlo, x);
      vhi = _mm512_max_ps(vhi, x);
    }
    lo = _mm512_reduce_min_ps(vlo);
    hi = _mm512_reduce_max_ps(vhi);
  }
  for (; k < c; ++k) {
    lo = std::min(lo, row[k]);
    hi = std::max(hi, row[k]);
  }
  return {lo, hi};
}

// out[k] = the nearest integer to (row[k] - lo) * inv_step, within [0, 255], for k < c.
void round_row(const float* row, int c, float lo, float inv_step, uint8_t* out) {
  const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_step);
  const __m512i zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
  int k = 0;
  for (; k + 16 <= c; k += 16) {
    // Rounds to nearest (the default MXCSR mode), as std::nearbyint.
    const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + k), vlo), vinv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, zero), top)));
  }
  for (; k < c; ++k) out[k] = static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, std::nearbyint((row[k] - lo) * inv_step))));
}

}  // namespace

void score_code_tiles_avx512vbmi(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                                 int groups, int c, float scale, float* scores, float* upper) {
  constexpr int kLevels = KeyCodebook::kLevels;
  const int64_t lut_size = static_cast<int64_t>(groups) * c, bound_size = static_cast<int64_t>(groups) * kLevels;
  thread_local std::vector<uint8_t> lut8, bound8, infinite8, level_plane;
  thread_local std::vector<HeadTables> tables;
  thread_local std::vector<float> lows;
  lows.resize(groups);
  lut8.assign(static_cast<size_t>(heads) * groups * 256, 0);
  bound8.assign(static_cast<size_t>(heads) * bound_size, 0);
  infinite8.assign(static_cast<size_t>(heads) * bound_size, 0);
  tables.assign(heads, HeadTables{});
  const float abs_scale = std::fabs(scale);
  for (int h = 0; h < heads; ++h) {
    HeadTables& t = tables[h];
    const float* lut = luts + h * lut_size;
    float widest = 0, magnitude = 0;
    for (int grp = 0; grp < groups; ++grp) {
      const auto [lo, hi] = row_range(lut + static_cast<int64_t>(grp) * c, c);
      lows[grp] = lo;
      t.base += lo;
      widest = std::max(widest, hi - lo);
      magnitude += std::max(std::fabs(lo), std::fabs(hi));
    }
    t.step = widest / 255.0f;
    if (t.step > 0)
      for (int grp = 0; grp < groups; ++grp)
        round_row(lut + static_cast<int64_t>(grp) * c, c, lows[grp], 1.0f / t.step, &lut8[(static_cast<size_t>(h) * groups + grp) * 256]);
    // Half a step per group from rounding, and float rounding of sums of this size.
    t.error = abs_scale * (0.5f * t.step * groups + 1e-5f * (magnitude + widest * groups));

    const float* bound = bound_luts + h * bound_size;
    float most = 0;
    bool any = false, top_only = true;
    for (int64_t i = 0; i < bound_size; ++i) {
      const bool top_level = i % kLevels == kLevels - 1, finite = std::isfinite(bound[i]);
      if (finite) most = std::max(most, bound[i]);
      any |= !finite;
      top_only &= finite != top_level;
    }
    t.unbounded = !any ? Unbounded::None : top_only ? Unbounded::TopLevel : Unbounded::Table;
    t.bound_step = most / 255.0f;
    for (int64_t i = 0; i < bound_size; ++i) {
      const size_t at = static_cast<size_t>(h) * bound_size + i;
      if (!std::isfinite(bound[i])) infinite8[at] = 0xFF;
      else if (t.bound_step > 0) bound8[at] = static_cast<uint8_t>(std::min(255.0f, std::ceil(bound[i] / t.bound_step)));
    }
    // Float rounding of the bound's sum, so that upper stays above the float reference.
    t.error += 1e-5f * most * groups;
  }

  level_plane.resize(static_cast<size_t>(groups) * kCodeTile);
  const size_t tile_size = code_tile_bytes(groups, c);
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int64_t t0 = 0; t0 < n; t0 += kCodeTile) {
    const uint8_t* tile = tiled + static_cast<size_t>(t0 / kCodeTile) * tile_size;
    // Level bytes of the tile, unpacked once for all heads; the index plane is read as it is.
    for (int grp = 0; grp < groups; ++grp)
      _mm512_storeu_si512(&level_plane[static_cast<size_t>(grp) * kCodeTile],
                          unpack_levels(tile + static_cast<size_t>(groups) * kCodeTile + grp * kCodeTile / 2));
    const int64_t valid = std::min<int64_t>(kCodeTile, n - t0);
    for (int h = 0; h < heads; ++h) {
      const uint8_t* lut = &lut8[static_cast<size_t>(h) * groups * 256];
      const uint8_t* bound = &bound8[static_cast<size_t>(h) * bound_size];
      const uint8_t* infinite = &infinite8[static_cast<size_t>(h) * bound_size];
      __m512i sum_lo = _mm512_setzero_si512(), sum_hi = _mm512_setzero_si512();
      __m512i slack_lo = _mm512_setzero_si512(), slack_hi = _mm512_setzero_si512();
      const HeadTables& t = tables[h];
      const uint8_t* levels = level_plane.data();
      const __mmask64 infinite_mask =
          t.unbounded == Unbounded::None
              ? sum_tile<Unbounded::None>(tile, levels, groups, lut, bound, infinite, sum_lo, sum_hi, slack_lo, slack_hi)
          : t.unbounded == Unbounded::TopLevel
              ? sum_tile<Unbounded::TopLevel>(tile, levels, groups, lut, bound, infinite, sum_lo, sum_hi, slack_lo, slack_hi)
              : sum_tile<Unbounded::Table>(tile, levels, groups, lut, bound, infinite, sum_lo, sum_hi, slack_lo, slack_hi);
      const __m512 mul = _mm512_set1_ps(t.step * scale), add = _mm512_set1_ps(t.base * scale);
      const __m512 bound_mul = _mm512_set1_ps(t.bound_step), error = _mm512_set1_ps(t.error);
      for (int q = 0; q < 4; ++q) {
        const int64_t left = valid - 16 * q;
        if (left <= 0) break;
        const __mmask16 store = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
        const __m512 s = _mm512_fmadd_ps(quarter(sum_lo, sum_hi, q), mul, add);
        __m512 u = _mm512_fmadd_ps(quarter(slack_lo, slack_hi, q), bound_mul, _mm512_add_ps(s, error));
        u = _mm512_mask_mov_ps(u, static_cast<__mmask16>(infinite_mask >> (16 * q)), inf);
        _mm512_mask_storeu_ps(scores + h * n + t0 + 16 * q, store, s);
        _mm512_mask_storeu_ps(upper + h * n + t0 + 16 * q, store, u);
      }
    }
  }
}

}  // namespace hcattn::kv
