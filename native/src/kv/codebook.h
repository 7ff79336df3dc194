// Key codes for the HCAttention fast tier.
//
// A post-RoPE key of d dims is split into g groups of d/g dims; each group has its own codebook of c
// centroids, so a key is stored as g 16-bit code words (12 bits in the cache's tiles when c <= 256).
// Approximate attention logits are then sums of g table lookups: LUT[group][code] = <q_group, centroid>,
// computed once per query head.
//
// A code word holds the centroid index in its low 12 bits (c <= 4096) and, in its top 4 bits, a level that
// bounds the norm of the group's quantization residual: |key_group - centroid| <= radii[group][level]. So
// |<q, key> - LUT score| <= sum over groups of |q_group| * radii[group][level], a per-token error bound at
// no extra bytes, which lets the selection keep every token that could reach the cut (see selection.h).
//
// Centroids are stored as f16 (in the fast tier they are what the LUTs are built from: half the bytes of
// f32; at 8k tokens of a 1B model with 256 centroids, 1.6% instead of 3.1% of f16 K+V), laid out per group
// dimension-major, (group, dim, centroid): a LUT row is then a sum of sub scaled centroid rows, and the
// nearest-centroid search reads the same layout. Training rounds the centroids to f16 before it measures
// the residual radii, so the bounds hold for the stored centroids.
//
// Invariants: centroids has g * sub * c f16 values laid out (group, dim, centroid); radii has g * kLevels
// floats, ascending per group, the last one +infinity (a residual beyond the calibrated range); every
// stored code word's index part is < c.
#pragma once
#include <cstdint>
#include <vector>

namespace hcattn::kv {

struct KeyCodebook {
  static constexpr int kIndexBits = 12;
  static constexpr int kMaxCentroids = 1 << kIndexBits;  // 4096
  static constexpr uint16_t kIndexMask = kMaxCentroids - 1;
  static constexpr int kLevels = 16;  // residual levels in the top 4 bits of a code word

  int dim = 0;     // d: key (head) dimension
  int groups = 0;  // g
  int centroids_per_group = 0;  // c
  std::vector<uint16_t> centroids;  // (g, d/g, c) f16
  std::vector<float> radii;         // (g, kLevels): residual-norm bound of each level

  static int index(uint16_t code) { return code & kIndexMask; }
  static int level(uint16_t code) { return code >> kIndexBits; }

  int sub() const { return dim / groups; }

  // Dimension j of centroid k of group grp.
  float centroid(int grp, int k, int j) const;
  // Every centroid as floats laid out (group, centroid, dim), the layout of snapshot sections and device
  // uploads; set_centroid_rows stores such rows (dim, groups and centroids_per_group set), rounded to f16.
  std::vector<float> centroid_rows() const;
  void set_centroid_rows(const float* rows);

  // Trains one codebook per group with k-means (k-means++ seeding, fixed seed, `iters` Lloyd rounds) on
  // n keys (row-major n x dim). When n > max_train, a seeded uniform subsample of max_train keys is used.
  static KeyCodebook train(const float* keys, int64_t n, int dim, int groups, int c, uint64_t seed,
                           int iters = 12, int64_t max_train = 65536);

  // codes[grp] = index of the nearest centroid (squared L2) of each group of `key`, with the level of the
  // smallest radius that bounds the residual.
  void encode(const float* key, uint16_t* codes) const;
  void encode_many(const float* keys, int64_t n, uint16_t* codes) const;  // codes: (n, g)
  // The key the codes stand for.
  void decode(const uint16_t* codes, float* key) const;
  // lut: (g, c); lut[grp * c + k] = <q[grp], centroid k of grp>.
  void build_lut(const float* q, float* lut) const;
  // bound_lut: (g, kLevels); scale * |q[grp]| * radii[grp][level] (+infinity for the last level).
  void build_bound_lut(const float* q, float scale, float* bound_lut) const;
};

// scores[j] = sum over groups of lut[grp * c + index(codes[j * g + grp])] for j in [0, n).
void score_codes(const float* lut, const uint16_t* codes, int64_t n, int groups, int c, float* scores);

// slack[j] = sum over groups of bound_lut[grp * kLevels + level(codes[j * g + grp])]: how far the exact
// score of token j can lie above its LUT score (same scale as bound_lut).
void score_slack(const float* bound_lut, const uint16_t* codes, int64_t n, int groups, float* slack);

}  // namespace hcattn::kv
