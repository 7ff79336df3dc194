// Needles at kernel level: a million cached keys (d = 128) of random noise with 1-16 keys planted along
// the query. At every key-code budget every needle must be selected, and the attention output computed
// from the selected tokens (approximate selection, exact re-scoring, f16 values) must match exact
// attention over all keys within 1e-2 (relative).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "kv/code_tiles.h"
#include "kv/codebook.h"
#include "kv/selection.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn::kv;

int main() {
  const int d = 128;
  const int64_t n = std::getenv("HCATTN_NEEDLE_TOKENS") ? std::atoll(std::getenv("HCATTN_NEEDLE_TOKENS")) : (1 << 20);
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);

  std::vector<float> keys(static_cast<size_t>(n) * d);
  for (auto& x : keys) x = nd(rng);
  std::vector<uint16_t> keys_f16(static_cast<size_t>(n) * d);  // the host-tier copy used for re-scoring
  std::vector<uint16_t> values(static_cast<size_t>(n) * d);
  for (auto& v : values) v = hcattn::quant::fp32_to_fp16(nd(rng));
  std::vector<float> q(d);
  for (auto& x : q) x = nd(rng);
  double qn = 0;
  for (float x : q) qn += x * x;
  qn = std::sqrt(qn);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (size_t i = 0; i < keys.size(); ++i) keys_f16[i] = hcattn::quant::fp32_to_fp16(keys[i]);

  // Codebooks are trained on the noise keys only: needles are keys the codebook has never seen.
  // 25%: 64 groups of 2 dims, 256 centroids; 12.5%: 32 groups of 4 dims, 1024 centroids.
  struct Budget {
    const char* name;
    KeyCodebook cb;
    std::vector<uint16_t> codes;
  };
  std::vector<Budget> budgets;
  budgets.push_back({"25%", KeyCodebook::train(keys.data(), n, d, 64, 256, 1, 8, 32768), {}});
  budgets.push_back({"12.5%", KeyCodebook::train(keys.data(), n, d, 32, 1024, 1, 8, 32768), {}});
  std::printf("[%.1fs] codebooks trained\n", seconds());
  for (Budget& b : budgets) {
    b.codes.resize(static_cast<size_t>(n) * b.cb.groups);
    b.cb.encode_many(keys.data(), n, b.codes.data());
  }

  std::printf("[%.1fs] %lld keys encoded at each budget\n", seconds(), static_cast<long long>(n));
  for (int needles : {1, 4, 16}) {
    std::vector<int64_t> where;
    std::vector<float> saved;  // the noise rows the needles replace, restored after this round
    std::uniform_int_distribution<int64_t> pos(1000, n - 1000);
    for (int i = 0; i < needles; ++i) {
      const int64_t p = pos(rng);
      where.push_back(p);
      saved.insert(saved.end(), keys.begin() + p * d, keys.begin() + (p + 1) * d);
      // Exact logit about 20 (the noise logits are N(0, 1)): each needle dominates the softmax.
      const float beta = 20.0f / (scale * static_cast<float>(qn)) * (1.0f + 0.01f * i);
      for (int j = 0; j < d; ++j) {
        keys[p * d + j] = beta * q[j] / static_cast<float>(qn);
        keys_f16[p * d + j] = hcattn::quant::fp32_to_fp16(keys[p * d + j]);
      }
      for (Budget& b : budgets) b.cb.encode(&keys[p * d], &b.codes[p * b.cb.groups]);
    }
    // Exact attention over all keys (double accumulation).
    std::vector<float> exact_scores(n);
    for (int64_t i = 0; i < n; ++i) {
      float s = 0;
      for (int j = 0; j < d; ++j) s += q[j] * keys[i * d + j];
      exact_scores[i] = s * scale;
    }
    Selection all;
    SelectParams everything;
    everything.top_p = 1.0f;
    everything.sinks = 0;
    everything.recent = 0;
    select_tokens(exact_scores.data(), n, everything, all);
    std::vector<float> exact(d);
    attend_values_f16(all, values.data(), d, d, exact.data());
    double exact_norm = 0;
    for (float x : exact) exact_norm += static_cast<double>(x) * x;
    exact_norm = std::sqrt(exact_norm);

    for (Budget& b : budgets) {
      const KeyCodebook& cb = b.cb;
      std::vector<float> lut(static_cast<size_t>(cb.groups) * cb.centroids_per_group), scores(n), upper(n);
      std::vector<float> bound_lut(static_cast<size_t>(cb.groups) * KeyCodebook::kLevels);
      cb.build_lut(q.data(), lut.data());
      cb.build_bound_lut(q.data(), scale, bound_lut.data());
      // The decode step's kernel over the codes in its tiled layout (8-bit LUTs where the CPU has VBMI).
      std::vector<uint8_t> tiled(tiled_bytes(n, cb.groups, cb.centroids_per_group));
      tile_codes(b.codes.data(), 0, n, cb.groups, cb.centroids_per_group, tiled.data());
      score_code_tiles(1, lut.data(), bound_lut.data(), tiled.data(), n, cb.groups, cb.centroids_per_group, scale,
                       scores.data(), upper.data());
      Selection sel;
      SelectParams params;
      params.margin = 3.0f;
      params.k_max = 4096;
      select_tokens(scores.data(), n, params, sel, upper.data());
      rescore_exact_f16(sel, q.data(), keys_f16.data(), d, d, scale);
      int found = 0;
      for (int64_t p : where) found += std::binary_search(sel.index.begin(), sel.index.end(), static_cast<int32_t>(p));
      std::vector<float> approx(d);
      attend_values_f16(sel, values.data(), d, d, approx.data());
      double err = 0;
      for (int j = 0; j < d; ++j) err += (approx[j] - exact[j]) * static_cast<double>(approx[j] - exact[j]);
      const double rel = std::sqrt(err) / exact_norm;
      std::printf("n=%lld needles=%2d budget %-5s: %d/%d needles selected, %zu tokens kept, output rel err %.2e\n",
                  static_cast<long long>(n), needles, b.name, found, needles, sel.index.size(), rel);
      CHECK(found == needles);
      CHECK(rel <= 1e-2);
      bool finite = true;
      for (float x : approx) finite &= std::isfinite(x);
      CHECK(finite);
    }
    for (size_t i = 0; i < where.size(); ++i) {
      const int64_t p = where[i];
      std::copy(saved.begin() + i * d, saved.begin() + (i + 1) * d, keys.begin() + p * d);
      for (int j = 0; j < d; ++j) keys_f16[p * d + j] = hcattn::quant::fp32_to_fp16(keys[p * d + j]);
      for (Budget& b : budgets) b.cb.encode(&keys[p * d], &b.codes[p * b.cb.groups]);
    }
  }
  // Time per decode step of the scoring (LUT, code scores, residual bounds) and of the selection over the
  // first n' cached tokens (median of 5): the float reference in (position, group) order, one query head
  // and a GQA group of 4 on one KV head's codes in the decode step's tiled kernel.
  for (Budget& b : budgets) {
    const KeyCodebook& cb = b.cb;
    for (int64_t m : {int64_t{1} << 16, int64_t{1} << 18, int64_t{1} << 20}) {
      if (m > n) continue;
      const int heads = 4;
      const size_t lut_size = static_cast<size_t>(cb.groups) * cb.centroids_per_group;
      const size_t bound_size = static_cast<size_t>(cb.groups) * KeyCodebook::kLevels;
      std::vector<float> luts(heads * lut_size), bounds(heads * bound_size), scores(m), upper(m);
      std::vector<float> tile_scores(heads * m), tile_upper(heads * m);
      std::vector<uint8_t> tiled(tiled_bytes(m, cb.groups, cb.centroids_per_group));
      tile_codes(b.codes.data(), 0, m, cb.groups, cb.centroids_per_group, tiled.data());
      std::vector<double> reference_s, one_s, group_s, select_s;
      Selection sel;
      SelectParams params;
      params.margin = 3.0f;
      for (int rep = 0; rep < 5; ++rep) {
        const auto t1 = std::chrono::steady_clock::now();
        cb.build_lut(q.data(), luts.data());
        cb.build_bound_lut(q.data(), scale, bounds.data());
        score_codes(luts.data(), b.codes.data(), m, cb.groups, cb.centroids_per_group, scores.data());
        score_slack(bounds.data(), b.codes.data(), m, cb.groups, upper.data());
        for (int64_t j = 0; j < m; ++j) upper[j] += (scores[j] *= scale);
        const auto t2 = std::chrono::steady_clock::now();
        cb.build_lut(q.data(), luts.data());
        cb.build_bound_lut(q.data(), scale, bounds.data());
        score_code_tiles(1, luts.data(), bounds.data(), tiled.data(), m, cb.groups, cb.centroids_per_group, scale,
                         tile_scores.data(), tile_upper.data());
        const auto t3 = std::chrono::steady_clock::now();
        for (int h = 1; h < heads; ++h) {
          cb.build_lut(q.data(), &luts[h * lut_size]);
          cb.build_bound_lut(q.data(), scale, &bounds[h * bound_size]);
        }
        score_code_tiles(heads, luts.data(), bounds.data(), tiled.data(), m, cb.groups, cb.centroids_per_group, scale,
                         tile_scores.data(), tile_upper.data());
        const auto t4 = std::chrono::steady_clock::now();
        select_tokens(scores.data(), m, params, sel, upper.data());
        const auto t5 = std::chrono::steady_clock::now();
        reference_s.push_back(std::chrono::duration<double>(t2 - t1).count());
        one_s.push_back(std::chrono::duration<double>(t3 - t2).count());
        group_s.push_back(std::chrono::duration<double>(t4 - t3).count());
        select_s.push_back(std::chrono::duration<double>(t5 - t4).count());
      }
      // Every head of the group got the same query: each equals the one-head scores, and the bound holds
      // over the float reference.
      bool same = true, bounded = true;
      for (int h = 0; h < heads; ++h)
        for (int64_t j = 0; j < m; ++j) {
          same &= tile_scores[h * m + j] == tile_scores[j];
          bounded &= tile_upper[h * m + j] >= upper[j] - 1e-4f;
        }
      CHECK(same);
      CHECK(bounded);
      for (auto* v : {&reference_s, &one_s, &group_s, &select_s}) std::sort(v->begin(), v->end());
      std::printf("budget %-5s n=%7lld: scoring %.2f ms float reference, %.2f ms tiled (%s), %.2f ms for 4 query heads in "
                  "shared tiles; selection %.2f ms (%zu tokens selected)\n",
                  b.name, static_cast<long long>(m), 1e3 * reference_s[2], 1e3 * one_s[2],
                  code_tiles_use_bytes(cb.centroids_per_group) ? "8-bit LUT" : "float", 1e3 * group_s[2], 1e3 * select_s[2],
                  sel.index.size());
    }
  }
  return test_summary("kv_needles");
}
