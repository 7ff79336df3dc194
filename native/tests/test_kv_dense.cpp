// Dense decode steps (HcConfig::dense_share): a KV head whose decode-step selection kept nearly every
// token attends exactly to all of them for its next steps, without scoring or selecting; the last step of
// each dense run checks on its exact scores whether a selection would still keep that share.
//   - Flat attention (small keys): every step is dense (the first one judges the head on its exact scores);
//     the outputs equal exact attention over the f16-rounded keys and values; with dense_share = 0 every
//     step selects and none is dense.
//   - Attention that turns sharp (sharp keys; small queries, then queries along one stretch's direction):
//     dense while flat, and the first check after the turn sends the head back to selecting.
//   - A context loaded from a snapshot takes the dense setting it is loaded with (a snapshot does not
//     record it): loaded with dense steps off, no step is dense.
//   - Sharp attention (keys in stretches along their own directions, the queries of a KV head along one of them): the
//     first step is dense and finds the head sharp, every later step selects a small share, and the outputs
//     stay close to exact attention.
#include <stdlib.h>  // mkdtemp

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kv/hc_cache.h"
#include "kv/snapshot.h"
#include "kv_test_util.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn;

namespace {

constexpr int kPrefix = 1500, kSteps = 33, kStretch = 100;

model::KvShape shape() {
  return hcattn_test::kv_shape(1, 4, 2, 32);
}

struct Run {
  kv::SelectionCounts counts;
  double max_error = 0;  // largest |output - exact attention| over the decode steps
};

// Stores kPrefix positions, then decodes kSteps positions one at a time. Keys have standard deviation
// key_sigma, or with `sharp` follow one direction per stretch, which each decode query from step
// sharp_from on points along (the queries before it are small: flat attention).
// With a snapshot path, the positions are stored with the default dense setting, saved there, and the
// steps decode in the cache loaded from it with dense_share.
Run run(float dense_share, float key_sigma, bool sharp, const std::string& snapshot = "", int sharp_from = 0) {
  const model::KvShape s = shape();
  const int d = s.head_dim, n = kPrefix + kSteps, rep = s.n_head / s.n_head_kv;
  const int kv_row = s.n_head_kv * d, q_row = s.n_head * d;
  std::vector<float> k = hcattn_test::gaussian(static_cast<int64_t>(n) * kv_row, 11, key_sigma);
  std::vector<float> v = hcattn_test::gaussian(static_cast<int64_t>(n) * kv_row, 12);
  std::vector<float> q = hcattn_test::gaussian(static_cast<int64_t>(n) * q_row, 13);
  if (sharp) {
    // Keys along one direction per stretch of kStretch positions; each query along one stretch's direction.
    const std::vector<float> dirs = hcattn_test::gaussian(static_cast<int64_t>(n / kStretch + 1) * d, 14);
    for (size_t at = 0; at < k.size(); ++at) k[at] = 1.5f * dirs[at / kv_row / kStretch * d + at % d] + 0.3f * k[at];
    for (int p = kPrefix; p < n; ++p)
      for (int h = 0; h < s.n_head; ++h) {
        const int stretch = (p * 7 + h / rep * 5) % (kPrefix / kStretch);  // one per KV head
        float* qh = &q[(static_cast<size_t>(p) * s.n_head + h) * d];
        for (int i = 0; i < d; ++i) qh[i] = p - kPrefix < sharp_from ? 0.01f * qh[i] : 3.0f * dirs[static_cast<size_t>(stretch) * d + i];
      }
  }

  kv::HcConfig cfg;
  cfg.calibration_tokens = kPrefix;  // the codebooks see every stretch (later keys keep to the calibrated range)
  cfg.dense_share = dense_share;
  kv::HcConfig stored = cfg;
  if (!snapshot.empty()) stored.dense_share = kv::HcConfig{}.dense_share;
  std::unique_ptr<kv::HcKvCache> cache = kv::make_hc_kv_cache(s, n, stored);
  cpu::ThreadPool pool(2);
  for (int pos = 0; pos < kPrefix; pos += 500)
    cache->store(0, pos, 500, &k[static_cast<size_t>(pos) * kv_row], &v[static_cast<size_t>(pos) * kv_row]);
  if (!snapshot.empty()) {
    kv::save_snapshot(snapshot, *cache, "sha256:dense", std::vector<int32_t>(kPrefix, 7), {{"all", "h0", 0, kPrefix}});
    cache = kv::load_snapshot(snapshot, "sha256:dense", s, cfg, n).cache;
  }
  cache->set_phase(kv::AttendPhase::Global);

  Run out;
  std::vector<float> got(q_row);
  for (int p = kPrefix; p < n; ++p) {
    cache->store(0, p, 1, &k[static_cast<size_t>(p) * kv_row], &v[static_cast<size_t>(p) * kv_row]);
    cache->attend(0, p, 1, &q[static_cast<size_t>(p) * q_row], got.data(), pool);
    // Exact attention over the f16-rounded keys and values the cache holds.
    const std::vector<double> want =
        hcattn_test::exact_attention(s, &q[static_cast<size_t>(p) * q_row], k.data(), v.data(), hcattn_test::first_positions(p + 1));
    for (size_t i = 0; i < want.size(); ++i) out.max_error = std::max(out.max_error, std::fabs(want[i] - got[i]));
  }
  out.counts = cache->selection_counts();
  return out;
}

}  // namespace

int main() {
  const int kv_heads = shape().n_head_kv;
  // The first step is dense and judges the head flat; the checks at the ends of the dense runs (steps 16 and
  // 31, dense_probe 16) keep every later step dense, per KV head.
  const Run flat = run(0.9f, 0.3f, false);
  std::printf("flat, dense 0.9: %lld of %lld head steps dense, kept %.3f, max error vs exact %.2e\n",
              static_cast<long long>(flat.counts.dense_steps), static_cast<long long>(flat.counts.decode_steps),
              static_cast<double>(flat.counts.selected) / flat.counts.candidates, flat.max_error);
  CHECK(flat.counts.decode_steps == kSteps * kv_heads);
  CHECK(flat.counts.dense_steps == kSteps * kv_heads);
  CHECK(flat.counts.selected == flat.counts.candidates);
  CHECK(flat.max_error < 2e-5);

  const Run every = run(0.0f, 0.3f, false);
  std::printf("flat, dense off: %lld dense head steps, max error vs exact %.2e\n", static_cast<long long>(every.counts.dense_steps),
              every.max_error);
  CHECK(every.counts.decode_steps == kSteps * kv_heads && every.counts.dense_steps == 0);
  CHECK(every.counts.candidates == static_cast<int64_t>(kv_heads) * kSteps * (2 * kPrefix + kSteps + 1) / 2);
  CHECK(every.max_error < 1e-3);

  char tmpl[] = "/tmp/hcattn-dense-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const Run loaded_off = run(0.0f, 0.3f, false, dir + "/flat.hckv");
  const Run loaded_on = run(0.9f, 0.3f, false, dir + "/flat.hckv");
  std::system(("rm -rf " + dir).c_str());
  std::printf("flat, loaded from a snapshot: %lld dense head steps with dense off, %lld with 0.9\n",
              static_cast<long long>(loaded_off.counts.dense_steps), static_cast<long long>(loaded_on.counts.dense_steps));
  CHECK(loaded_off.counts.decode_steps == kSteps * kv_heads && loaded_off.counts.dense_steps == 0);
  CHECK(loaded_on.counts.dense_steps == kSteps * kv_heads);
  CHECK(loaded_off.max_error < 1e-3 && loaded_on.max_error < 2e-5);

  const Run sharp = run(0.9f, 1.0f, true);
  const double kept = static_cast<double>(sharp.counts.selected) / sharp.counts.candidates;
  std::printf("sharp, dense 0.9: %lld dense head steps, kept %.3f, max error vs exact %.2e\n",
              static_cast<long long>(sharp.counts.dense_steps), kept, sharp.max_error);
  CHECK(sharp.counts.decode_steps == kSteps * kv_heads && sharp.counts.dense_steps == kv_heads);
  CHECK(kept < 0.5);
  CHECK(sharp.max_error < 1e-2);

  // Flat for 20 steps, then sharp: steps 1-16 and 17-31 are dense (the checks at 1 and 16 still see flat
  // attention, the one at 31 sharp), 32 and 33 select.
  const Run turning = run(0.9f, 0.3f, true, "", 20);
  std::printf("flat then sharp from step 21, dense 0.9: %lld dense head steps, max error vs exact %.2e\n",
              static_cast<long long>(turning.counts.dense_steps), turning.max_error);
  CHECK(turning.counts.dense_steps == 31 * kv_heads);
  CHECK(turning.max_error < 1e-2);
  return test_summary("kv_dense");
}
