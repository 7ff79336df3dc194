// Key codes in tiles: the fast tier's in-memory layout, and the decode step's scoring over it.
//
// A tile holds the codes of kCodeTile consecutive positions group by group: (tile, group, position in the
// tile), so one group's codes of 64 positions are 128 contiguous bytes. Scoring then reads, per group, one
// row of code words and looks all of them up in that group's LUT at once (AVX-512 VBMI byte permutes over
// a LUT rounded to 8 bits), instead of one scalar lookup per (position, group). Snapshots keep the plain
// (position, group) order (kv/snapshot.h); tile_codes / untile_codes convert.
//
// Invariants: a tiled buffer of n positions holds tiled_words(n, g) words; the words of positions past n
// in the last tile are unspecified and never read as scores.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hcattn::kv {

constexpr int kCodeTile = 64;

// Words a tiled buffer needs for n positions of g groups (whole tiles).
inline size_t tiled_words(int64_t n, int groups) {
  return static_cast<size_t>((n + kCodeTile - 1) / kCodeTile) * kCodeTile * static_cast<size_t>(groups);
}

// Writes the codes of positions [from, from + n), given in (position, group) order, into a tiled buffer.
void tile_codes(const uint16_t* rows, int64_t from, int64_t n, int groups, uint16_t* tiled);
// The codes of positions [0, n) of a tiled buffer in (position, group) order.
void untile_codes(const uint16_t* tiled, int64_t n, int groups, uint16_t* rows);

// For `heads` query heads sharing the codes (GQA) and positions [0, n) of a tiled buffer:
//   scores[h * n + j] ≈ scale * sum over groups of luts[h][grp][index(code)]
//   upper[h * n + j]  ≥ the exact scaled logit: the score plus the residual bound (bound_luts (heads, g,
//                       kLevels), already scaled; an infinite entry makes the bound infinite) plus the
//                       rounding error of the score.
// With c <= 256 on a CPU with AVX-512 VBMI the LUTs are rounded to 8 bits per group (one step for all
// groups of a head): each score is then within groups * step / 2 of the float sum, and that error is added
// to upper, so the bound still holds. Elsewhere the sums are exact float sums.
void score_code_tiles(int heads, const float* luts, const float* bound_luts, const uint16_t* tiled, int64_t n,
                      int groups, int c, float scale, float* scores, float* upper);

// The float path (the reference the 8-bit path is tested against).
void score_code_tiles_scalar(int heads, const float* luts, const float* bound_luts, const uint16_t* tiled, int64_t n,
                             int groups, int c, float scale, float* scores, float* upper);
// The 8-bit path; needs c <= 256 and AVX-512 VBMI.
void score_code_tiles_avx512vbmi(int heads, const float* luts, const float* bound_luts, const uint16_t* tiled, int64_t n,
                                 int groups, int c, float scale, float* scores, float* upper);

// Whether score_code_tiles takes the 8-bit path for codebooks of c centroids on this CPU.
bool code_tiles_use_bytes(int c);

}  // namespace hcattn::kv
