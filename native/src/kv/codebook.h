// Key codes for the HCAttention fast tier.
//
// A post-RoPE key of d dims is split into g groups of d/g dims; each group has its own codebook of c
// centroids, so a key is stored as g 16-bit codes. Approximate attention logits are then sums of g
// table lookups: LUT[group][code] = <q_group, centroid>, computed once per query head.
//
// Invariants: centroids has g * c * sub floats laid out (group, centroid, dim); every stored code is < c.
#pragma once
#include <cstdint>
#include <vector>

namespace hcattn::kv {

struct KeyCodebook {
  int dim = 0;     // d: key (head) dimension
  int groups = 0;  // g
  int centroids_per_group = 0;  // c
  std::vector<float> centroids;  // (g, c, d/g)

  int sub() const { return dim / groups; }

  // Trains one codebook per group with k-means (k-means++ seeding, fixed seed, `iters` Lloyd rounds) on
  // n keys (row-major n x dim). When n > max_train, a seeded uniform subsample of max_train keys is used.
  static KeyCodebook train(const float* keys, int64_t n, int dim, int groups, int c, uint64_t seed,
                           int iters = 12, int64_t max_train = 65536);

  // codes[grp] = index of the nearest centroid (squared L2) of each group of `key`.
  void encode(const float* key, uint16_t* codes) const;
  void encode_many(const float* keys, int64_t n, uint16_t* codes) const;  // codes: (n, g)
  // The key the codes stand for.
  void decode(const uint16_t* codes, float* key) const;
  // lut: (g, c); lut[grp * c + k] = <q[grp], centroid k of grp>.
  void build_lut(const float* q, float* lut) const;
};

// scores[j] = sum over groups of lut[grp * c + codes[j * g + grp]] for j in [0, n).
void score_codes(const float* lut, const uint16_t* codes, int64_t n, int groups, int c, float* scores);

}  // namespace hcattn::kv
