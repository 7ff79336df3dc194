// Key codes in tiles: the fast tier's in-memory layout, and the decode step's scoring over it.
//
// A code word (codebook.h) is a 12-bit centroid index and a 4-bit residual level. In memory the codes of
// kCodeTile consecutive positions form a tile of planes, group by group:
//   index plane:  64 bytes per group, the low 8 index bits of each position;
//   level plane:  32 bytes per group, the level of position i (low nibble) and of position i + 32 (high);
//   high plane:   only when c > 256: 32 bytes per group, index bits 8-11, packed like the levels.
// So a code takes 12 bits (c <= 256) instead of 16, and scoring reads, per group, one row of 64 index
// bytes and looks all of them up in that group's LUT at once (AVX-512 VBMI byte permutes over a LUT rounded
// to 8 bits), instead of one scalar lookup per (position, group). Snapshots keep whole code words in
// (position, group) order (kv/snapshot.h); tile_codes / untile_codes convert.
//
// Invariants: a tiled buffer of n positions holds tiled_bytes(n, g, c) bytes; the bytes of positions past
// n in the last tile are unspecified and never read as scores.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hcattn::kv {

constexpr int kCodeTile = 64;

// Bytes of one tile of g groups for codebooks of c centroids.
inline size_t code_tile_bytes(int groups, int c) {
  return static_cast<size_t>(groups) * (kCodeTile + kCodeTile / 2 + (c > 256 ? kCodeTile / 2 : 0));
}

// Bytes a tiled buffer needs for n positions (whole tiles).
inline size_t tiled_bytes(int64_t n, int groups, int c) {
  return static_cast<size_t>((n + kCodeTile - 1) / kCodeTile) * code_tile_bytes(groups, c);
}

// Writes the code words of positions [from, from + n), given in (position, group) order, into a tiled buffer.
void tile_codes(const uint16_t* rows, int64_t from, int64_t n, int groups, int c, uint8_t* tiled);
// The code words of positions [0, n) of a tiled buffer in (position, group) order.
void untile_codes(const uint8_t* tiled, int64_t n, int groups, int c, uint16_t* rows);

// For `heads` query heads sharing the codes (GQA) and positions [0, n) of a tiled buffer:
//   scores[h * n + j] ≈ scale * sum over groups of luts[h][grp][index(code)]
//   upper[h * n + j]  ≥ the exact scaled logit: the score plus the residual bound (bound_luts (heads, g,
//                       kLevels), already scaled; an infinite entry makes the bound infinite) plus the
//                       rounding error of the score.
// With c <= 256 on a CPU with AVX-512 VBMI the LUTs are rounded to 8 bits per group (one step for all
// groups of a head): each score is then within groups * step / 2 of the float sum, and that error is added
// to upper, so the bound still holds. Elsewhere the sums are exact float sums.
void score_code_tiles(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                      int groups, int c, float scale, float* scores, float* upper);

// The float path (the reference the 8-bit path is tested against).
void score_code_tiles_scalar(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                             int groups, int c, float scale, float* scores, float* upper);
// The 8-bit path; needs c <= 256 and AVX-512 VBMI.
void score_code_tiles_avx512vbmi(int heads, const float* luts, const float* bound_luts, const uint8_t* tiled, int64_t n,
                                 int groups, int c, float scale, float* scores, float* upper);

// Whether score_code_tiles takes the 8-bit path for codebooks of c centroids on this CPU.
bool code_tiles_use_bytes(int c);

}  // namespace hcattn::kv
