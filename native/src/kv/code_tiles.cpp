#include "kv/code_tiles.h"

#include <algorithm>

#include "cpu/features.h"
#include "kv/codebook.h"

namespace hcattn::kv {

namespace {

constexpr int kHalf = kCodeTile / 2;

// Where position i of a tile (0..63) keeps its nibble in a 32-byte nibble plane: byte i % 32, high
// nibble for the second half (so unpacking a plane is a mask and a shift, no interleave).
inline int nibble_shift(int i) { return i < kHalf ? 0 : 4; }

// The planes of one tile (Byte: uint8_t to write, const uint8_t to read).
struct TileView {
  int groups;
  bool wide;  // c > 256: index bits 8-11 in a third plane
  template <typename Byte>
  Byte* index(Byte* tile, int grp) const { return tile + grp * kCodeTile; }
  template <typename Byte>
  Byte* level(Byte* tile, int grp) const { return tile + groups * kCodeTile + grp * kHalf; }
  template <typename Byte>
  Byte* high(Byte* tile, int grp) const { return tile + groups * (kCodeTile + kHalf) + grp * kHalf; }
};

}  // namespace

void tile_codes(const uint16_t* rows, int64_t from, int64_t n, int groups, int c, uint8_t* tiled) {
  const TileView v{groups, c > 256};
  const size_t tile_size = code_tile_bytes(groups, c);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t j = from + k;
    uint8_t* tile = tiled + static_cast<size_t>(j / kCodeTile) * tile_size;
    const int i = static_cast<int>(j % kCodeTile), shift = nibble_shift(i);
    const uint8_t keep = static_cast<uint8_t>(0xF0 >> shift);  // the other position's nibble
    for (int grp = 0; grp < groups; ++grp) {
      const uint16_t word = rows[k * groups + grp];
      const int index = KeyCodebook::index(word);
      v.index(tile, grp)[i] = static_cast<uint8_t>(index);
      uint8_t& lv = v.level(tile, grp)[i % kHalf];
      lv = static_cast<uint8_t>((lv & keep) | KeyCodebook::level(word) << shift);
      if (v.wide) {
        uint8_t& hi = v.high(tile, grp)[i % kHalf];
        hi = static_cast<uint8_t>((hi & keep) | (index >> 8) << shift);
      }
    }
  }
}

void untile_codes(const uint8_t* tiled, int64_t n, int groups, int c, uint16_t* rows) {
  const TileView v{groups, c > 256};
  const size_t tile_size = code_tile_bytes(groups, c);
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* tile = tiled + static_cast<size_t>(j / kCodeTile) * tile_size;
    const int i = static_cast<int>(j % kCodeTile), shift = nibble_shift(i);
    for (int grp = 0; grp < groups; ++grp) {
      int index = v.index(tile, grp)[i];
      if (v.wide) index |= (v.high(tile, grp)[i % kHalf] >> shift & 0xF) << 8;
      const int level = v.level(tile, grp)[i % kHalf] >> shift & 0xF;
      rows[j * groups + grp] = static_cast<uint16_t>(level << KeyCodebook::kIndexBits | index);
    }
  }
}

void score_code_tiles_scalar(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                             int groups, int c, float scale, float* scores, float* upper) {
  const int64_t lut_size = static_cast<int64_t>(groups) * c, bound_size = static_cast<int64_t>(groups) * KeyCodebook::kLevels;
  const TileView v{groups, c > 256};
  const size_t tile_size = code_tile_bytes(groups, c);
  for (int64_t t0 = 0; t0 < n; t0 += kCodeTile) {
    const uint8_t* tile = tiled + static_cast<size_t>(t0 / kCodeTile) * tile_size;
    const int m = static_cast<int>(std::min<int64_t>(kCodeTile, n - t0));
    // The tile's codes, unpacked once for every head (which read them while they are in L1).
    int index[kCodeTile * 4], level[kCodeTile * 4];
    for (int g0 = 0; g0 < groups; g0 += 4) {
      const int gn = std::min(4, groups - g0);
      for (int grp = 0; grp < gn; ++grp)
        for (int i = 0; i < m; ++i) {
          const int shift = nibble_shift(i);
          index[grp * kCodeTile + i] = v.index(tile, g0 + grp)[i] | (v.wide ? (v.high(tile, g0 + grp)[i % kHalf] >> shift & 0xF) << 8 : 0);
          level[grp * kCodeTile + i] = v.level(tile, g0 + grp)[i % kHalf] >> shift & 0xF;
        }
      for (int h = 0; h < heads; ++h) {
        float* s = scores + h * n + t0;
        float* b = upper + h * n + t0;
        if (g0 == 0) std::fill(s, s + m, 0.0f), std::fill(b, b + m, 0.0f);
        for (int grp = 0; grp < gn; ++grp) {
          const float* row = luts + h * lut_size + static_cast<int64_t>(g0 + grp) * c;
          const float* brow = bound_luts + h * bound_size + (g0 + grp) * KeyCodebook::kLevels;
          for (int i = 0; i < m; ++i) {
            s[i] += row[index[grp * kCodeTile + i]];
            b[i] += brow[level[grp * kCodeTile + i]];
          }
        }
      }
    }
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < m; ++i) {
        float& s = scores[h * n + t0 + i];
        s *= scale;
        upper[h * n + t0 + i] += s;
      }
  }
}

bool code_tiles_use_bytes(int c) {
  static const bool vbmi = cpu::simd_level() == cpu::SimdLevel::Avx512 && cpu::features().avx512vbmi;
  return vbmi && c <= 256;
}

void score_code_tiles(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                      int groups, int c, float scale, float* scores, float* upper) {
  if (code_tiles_use_bytes(c))
    score_code_tiles_avx512vbmi(heads, luts, bound_luts, tiled, n, groups, c, scale, scores, upper);
  else
    score_code_tiles_scalar(heads, luts, bound_luts, tiled, n, groups, c, scale, scores, upper);
}

}  // namespace hcattn::kv
