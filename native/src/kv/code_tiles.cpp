#include "kv/code_tiles.h"

#include <algorithm>

#include "cpu/features.h"
#include "kv/codebook.h"

namespace hcattn::kv {

void tile_codes(const uint16_t* rows, int64_t from, int64_t n, int groups, uint16_t* tiled) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = from + i;
    uint16_t* tile = tiled + (j / kCodeTile) * kCodeTile * groups + j % kCodeTile;
    for (int grp = 0; grp < groups; ++grp) tile[grp * kCodeTile] = rows[i * groups + grp];
  }
}

void untile_codes(const uint16_t* tiled, int64_t n, int groups, uint16_t* rows) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* tile = tiled + (j / kCodeTile) * kCodeTile * groups + j % kCodeTile;
    for (int grp = 0; grp < groups; ++grp) rows[j * groups + grp] = tile[grp * kCodeTile];
  }
}

void score_code_tiles_scalar(int heads, const float* luts, const float* bound_luts, const uint16_t* tiled, int64_t n,
                             int groups, int c, float scale, float* scores, float* upper) {
  const int64_t lut_size = static_cast<int64_t>(groups) * c, bound_size = static_cast<int64_t>(groups) * KeyCodebook::kLevels;
  for (int64_t t0 = 0; t0 < n; t0 += kCodeTile) {
    const uint16_t* tile = tiled + t0 * groups;
    const int m = static_cast<int>(std::min<int64_t>(kCodeTile, n - t0));
    // Every head reads the tile while it is in L1.
    for (int h = 0; h < heads; ++h) {
      const float* lut = luts + h * lut_size;
      const float* bound = bound_luts + h * bound_size;
      float s[kCodeTile] = {}, b[kCodeTile] = {};
      for (int grp = 0; grp < groups; ++grp) {
        const uint16_t* words = tile + grp * kCodeTile;
        const float* row = lut + static_cast<int64_t>(grp) * c;
        const float* brow = bound + grp * KeyCodebook::kLevels;
        for (int i = 0; i < m; ++i) {
          s[i] += row[KeyCodebook::index(words[i])];
          b[i] += brow[KeyCodebook::level(words[i])];
        }
      }
      for (int i = 0; i < m; ++i) {
        scores[h * n + t0 + i] = s[i] * scale;
        upper[h * n + t0 + i] = s[i] * scale + b[i];
      }
    }
  }
}

bool code_tiles_use_bytes(int c) {
  static const bool vbmi = cpu::simd_level() == cpu::SimdLevel::Avx512 && cpu::features().avx512vbmi;
  return vbmi && c <= 256;
}

void score_code_tiles(int heads, const float* luts, const float* bound_luts, const uint16_t* tiled, int64_t n,
                      int groups, int c, float scale, float* scores, float* upper) {
  if (code_tiles_use_bytes(c))
    score_code_tiles_avx512vbmi(heads, luts, bound_luts, tiled, n, groups, c, scale, scores, upper);
  else
    score_code_tiles_scalar(heads, luts, bound_luts, tiled, n, groups, c, scale, scores, upper);
}

}  // namespace hcattn::kv
