// The decode step's kernels over the fast and host tiers: tiled key codes (12 bits each up to 256
// centroids) round-trip to (position, group) order; the 8-bit LUT scoring (AVX-512 VBMI) stays within its stated error of the float scoring and its
// upper bound stays above the exact logit of the decoded key plus the residual bound; the rows of a
// selection read once for several heads equal one dot / axpy per head; the vector exponentials match
// std::exp.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu/features.h"
#include "kv/code_tiles.h"
#include "kv/codebook.h"
#include "kv/f16_rows.h"
#include "kv_test_util.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn::kv;
using hcattn_test::gaussian;

namespace {

// Code words of c centroids: index < c, any level.
void test_tiling_round_trip(int c) {
  const int groups = 5;
  const int64_t n = 3 * kCodeTile + 17;
  std::vector<uint16_t> rows(n * groups);
  for (size_t i = 0; i < rows.size(); ++i) {
    const uint32_t r = static_cast<uint32_t>(i * 2654435761u >> 7);
    rows[i] = static_cast<uint16_t>((r >> 16 & 0xF) << KeyCodebook::kIndexBits | r % c);
  }
  std::vector<uint8_t> tiled(tiled_bytes(n, groups, c), 0xFF);
  // 12 bits per code up to 256 centroids, 16 beyond.
  CHECK(tiled.size() == static_cast<size_t>(4 * kCodeTile * groups * (c > 256 ? 2 : 1.5)));
  // Written in two calls that split a tile, as a prefill chunk and the next decode step do.
  tile_codes(rows.data(), 0, 100, groups, c, tiled.data());
  tile_codes(rows.data() + 100 * groups, 100, n - 100, groups, c, tiled.data());
  std::vector<uint16_t> back(n * groups);
  untile_codes(tiled.data(), n, groups, c, back.data());
  CHECK(back == rows);
  // The low index byte of group g, position j sits at (tile, g, j % 64).
  const size_t tile = code_tile_bytes(groups, c);
  CHECK(tiled[tile + 3 * kCodeTile + 5] == (rows[(kCodeTile + 5) * groups + 3] & 0xFF));
}

// Scores of n keys (d = 64, the given groups) under the float and the dispatching path, against the exact
// logits of the decoded keys. Keys of key_sigma > 1 lie partly beyond the calibrated range (the unbounded
// last level); mid_level_infinite also makes level 3 of every group unbounded for the first head (a bound
// table the 8-bit path reads through a lookup rather than comparing levels).
void test_scoring(int groups, int c, int heads, int64_t n, uint64_t seed, float key_sigma = 1.0f, bool mid_level_infinite = false) {
  const int d = 64;
  const float scale = 1.0f / 8;
  const std::vector<float> train = gaussian(4096 * d, seed);
  const KeyCodebook cb = KeyCodebook::train(train.data(), 4096, d, groups, c, seed, 4);
  const std::vector<float> keys = gaussian(n * d, seed + 1, key_sigma);
  std::vector<uint16_t> rows(n * groups);
  std::vector<uint8_t> tiled(tiled_bytes(n, groups, c));
  cb.encode_many(keys.data(), n, rows.data());
  tile_codes(rows.data(), 0, n, groups, c, tiled.data());
  const std::vector<float> q = gaussian(static_cast<int64_t>(heads) * d, seed + 2, 2.0f);
  std::vector<float> luts(static_cast<size_t>(heads) * groups * c), bounds(static_cast<size_t>(heads) * groups * KeyCodebook::kLevels);
  for (int h = 0; h < heads; ++h) {
    cb.build_lut(&q[h * d], &luts[static_cast<size_t>(h) * groups * c]);
    cb.build_bound_lut(&q[h * d], scale, &bounds[static_cast<size_t>(h) * groups * KeyCodebook::kLevels]);
  }
  if (mid_level_infinite)
    for (int grp = 0; grp < groups; ++grp) bounds[grp * KeyCodebook::kLevels + 3] = std::numeric_limits<float>::infinity();
  std::vector<float> ref_s(heads * n), ref_u(heads * n), s(heads * n), u(heads * n);
  score_code_tiles_scalar(heads, luts.data(), bounds.data(), tiled.data(), n, groups, c, scale, ref_s.data(), ref_u.data());
  score_code_tiles(heads, luts.data(), bounds.data(), tiled.data(), n, groups, c, scale, s.data(), u.data());

  // The float path against the (position, group) reference of codebook.h.
  std::vector<float> plain(n);
  score_codes(luts.data(), rows.data(), n, groups, c, plain.data());
  double worst_plain = 0;
  for (int64_t j = 0; j < n; ++j) worst_plain = std::max(worst_plain, static_cast<double>(std::fabs(plain[j] * scale - ref_s[j])));
  CHECK(worst_plain <= 1e-5);

  const bool bytes = code_tiles_use_bytes(c);
  int64_t unbounded = 0, violations = 0;
  double worst = 0, allowed = 0;
  std::vector<float> decoded(d);
  for (int h = 0; h < heads; ++h) {
    // The stated error: half a byte step per group, the step being the widest group range / 255.
    float widest = 0;
    for (int grp = 0; grp < groups; ++grp) {
      const float* row = &luts[(static_cast<size_t>(h) * groups + grp) * c];
      widest = std::max(widest, *std::max_element(row, row + c) - *std::min_element(row, row + c));
    }
    const double error = bytes ? scale * (0.5 * widest / 255 * groups) * 1.001 + 1e-4 : 1e-5;
    allowed = std::max(allowed, error);
    for (int64_t j = 0; j < n; ++j) {
      worst = std::max(worst, std::fabs(s[h * n + j] - ref_s[h * n + j]) / error);
      if (std::isinf(u[h * n + j])) {
        ++unbounded;
        CHECK(std::isinf(ref_u[h * n + j]));
        continue;
      }
      // The upper bound holds for the key itself: exact logit <= upper.
      float exact = 0;
      for (int i = 0; i < d; ++i) exact += q[h * d + i] * keys[j * d + i];
      if (exact * scale > u[h * n + j] + 1e-4f) ++violations;
      if (u[h * n + j] + 1e-4f < ref_u[h * n + j] - error) ++violations;
    }
  }
  std::printf("scoring g=%d c=%d heads=%d n=%ld (%s): worst |score - float| = %.3f of the stated error %.4f, %ld unbounded\n",
              groups, c, heads, static_cast<long>(n), bytes ? "8-bit" : "float", worst, allowed, static_cast<long>(unbounded));
  CHECK(worst <= 1.0);
  CHECK(violations == 0);
  if (key_sigma > 1 || mid_level_infinite) CHECK(unbounded > 0);
}

// The multi-head row kernels against the single-row ones: heads in fours and a remainder, rows in fours
// and a remainder.
void test_rows(int d, int heads) {
  const int64_t n = 300;
  std::mt19937_64 rng(5);
  std::vector<uint16_t> rows(n * d);
  const std::vector<float> values = gaussian(n * d, 6);
  for (int64_t i = 0; i < n * d; ++i) rows[i] = hcattn::quant::fp32_to_fp16(values[i]);
  const std::vector<float> q = gaussian(heads * d, 7);
  std::vector<int32_t> index;
  for (int32_t j = 0; j < n; j += 1 + static_cast<int32_t>(rng() % 3)) index.push_back(j);
  const int64_t k = static_cast<int64_t>(index.size());
  std::vector<float> dots(heads * k);
  dot_rows_f16(q.data(), heads, rows.data(), index.data(), k, d, 0.125f, dots.data());
  const std::vector<float> w = gaussian(heads * k, 8);
  std::vector<float> sums(heads * d, 0.5f), want(heads * d, 0.5f);
  weighted_rows_f16(w.data(), heads, rows.data(), index.data(), k, d, sums.data());
  double worst_dot = 0, worst_sum = 0;
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < k; ++i) {
      worst_dot = std::max(worst_dot, std::fabs(dots[h * k + i] - 0.125 * dot_f16(&q[h * d], &rows[index[i] * d], d)));
      axpy_f16(w[h * k + i], &rows[index[i] * d], &want[h * d], d);
    }
  for (int i = 0; i < heads * d; ++i) worst_sum = std::max(worst_sum, static_cast<double>(std::fabs(sums[i] - want[i])));
  CHECK(worst_dot <= 1e-5);
  CHECK(worst_sum <= 1e-4);
}

void test_exponentials() {
  std::vector<float> x = gaussian(1003, 9, 20.0f);
  x[3] = -std::numeric_limits<float>::infinity();
  x[10] = -200;
  const float shift = 15;
  std::vector<float> e = x;
  const double sum = exp_shifted(e.data(), static_cast<int64_t>(e.size()), shift);
  double want_sum = 0, worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    // Against the exact exponential of the float difference the kernels exponentiate.
    const double want = std::exp(static_cast<double>(x[i] - shift));
    want_sum += want;
    worst = std::max(worst, std::fabs(e[i] - want) / std::max(want, 1e-30));
  }
  CHECK(e[3] == 0.0f);
  CHECK(e[10] == 0.0f);
  CHECK(worst <= 1e-6);
  CHECK_NEAR(sum / want_sum, 1.0, 1e-6);

  const int block = 64;
  const int64_t blocks = static_cast<int64_t>(x.size()) / block;
  std::vector<uint8_t> skip(x.size());
  for (size_t i = 0; i < skip.size(); ++i) skip[i] = i % 5 == 0;
  std::vector<double> sums(blocks);
  block_exp_sums(x.data(), skip.data(), blocks, block, shift, sums.data());
  for (int64_t b = 0; b < blocks; ++b) {
    double want = 0;
    for (int j = 0; j < block; ++j)
      if (!skip[b * block + j]) want += std::exp(static_cast<double>(x[b * block + j] - shift));
    CHECK(std::fabs(sums[b] - want) <= 1e-5 * want + 1e-30);
  }
}

}  // namespace

int main() {
  std::printf("SIMD level %s, AVX-512 VBMI %s\n", hcattn::cpu::simd_level_name(hcattn::cpu::simd_level()),
              hcattn::cpu::features().avx512vbmi ? "yes" : "no");
  test_tiling_round_trip(256);
  test_tiling_round_trip(4096);
  test_scoring(32, 256, 4, 1000, 11);  // 25% at d = 64: the 8-bit path where the CPU has VBMI
  test_scoring(16, 256, 1, 130, 12);   // 12.5%, one head, a partial last tile
  test_scoring(32, 100, 2, 200, 13);   // fewer centroids than a byte holds
  test_scoring(32, 1024, 2, 200, 14);  // c > 256: the float path everywhere
  test_scoring(32, 256, 2, 300, 15, 1.6f);        // keys partly beyond the calibrated range: unbounded last level
  test_scoring(32, 256, 2, 300, 16, 1.0f, true);  // an unbounded middle level
  for (int d : {64, 128})
    for (int heads : {1, 4, 6}) test_rows(d, heads);
  test_exponentials();
  return test_summary("test_kv_code_tiles");
}
