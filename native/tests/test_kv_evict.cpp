// The value cap (HcConfig::value_cap): past it, the tokens that drew the least attention are evicted for
// good, never the sinks or the recent window.
//   - Needles: keys of a few planted positions point along the direction every query points along, the
//     rest are noise. With a cap of a third of the positions, every needle, sink and recent position is
//     still held at the end, the tiers hold no more than the cap (bytes included), and a query along the
//     needles gets the same output as exact attention over every position ever stored.
//   - A cap the text never reaches changes nothing (outputs bit-equal to no cap).
//   - Star-attention prefill after evictions attends to the anchor slots and to the held positions of the
//     query's own block: outputs equal exact attention over exactly those.
//   - clone_prefix and truncate keep the held positions before their point; storing continues after them.
//   - A context that evicted saves what it holds: loaded, it holds the same positions and attends the same,
//     bit for bit; kept to a segment boundary, it holds the positions before it.
//   - Too small a cap, or a chunk that cannot fit, is refused with a message that says what to change.
#include <stdlib.h>  // mkdtemp

#include <algorithm>
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
#include "test_util.h"

using namespace hcattn;

namespace {

constexpr int kTokens = 3072, kChunk = 64, kCap = 1024, kLayers = 2;

model::KvShape shape() { return hcattn_test::kv_shape(kLayers, 4, 2, 64); }

bool is_needle(int p) { return p >= 100 && p < 2020 && (p - 100) % 120 == 0; }  // 16 of them

struct Data {
  std::vector<float> k, v, q;  // (kTokens, n_head_kv * d) keys and values of every layer; (kTokens, n_head * d) queries
};

// Noise keys, needles along `dir` (scaled), queries along `dir`; values random.
Data make_data() {
  const model::KvShape s = shape();
  const int d = s.head_dim, kv_row = s.n_head_kv * d, q_row = s.n_head * d;
  Data out;
  out.k = hcattn_test::gaussian(static_cast<int64_t>(kTokens) * kv_row, 21, 0.3f);
  out.v = hcattn_test::gaussian(static_cast<int64_t>(kTokens) * kv_row, 22);
  out.q = hcattn_test::gaussian(static_cast<int64_t>(kTokens) * q_row, 23, 0.3f);
  const std::vector<float> dir = hcattn_test::gaussian(d, 24);
  for (int p = 0; p < kTokens; ++p) {
    for (int h = 0; h < s.n_head; ++h)
      for (int i = 0; i < d; ++i) out.q[(static_cast<size_t>(p) * s.n_head + h) * d + i] += 0.6f * dir[i];
    if (!is_needle(p)) continue;
    for (int kvh = 0; kvh < s.n_head_kv; ++kvh)
      for (int i = 0; i < d; ++i) out.k[(static_cast<size_t>(p) * s.n_head_kv + kvh) * d + i] = 2.5f * dir[i];
  }
  return out;
}

// Stores every position in chunks, each chunk's queries attending after it (every layer), in `phase`.
// Returns the last chunk's outputs (kChunk, n_head * d) of the last layer.
std::vector<float> fill(kv::HcKvCache& cache, const Data& data, kv::AttendPhase phase, cpu::ThreadPool& pool, int upto = kTokens) {
  const model::KvShape s = shape();
  const int kv_row = s.n_head_kv * s.head_dim, q_row = s.n_head * s.head_dim;
  cache.set_phase(phase);
  std::vector<float> out(static_cast<size_t>(kChunk) * q_row);
  for (int pos = 0; pos < upto; pos += kChunk)
    for (int layer = 0; layer < kLayers; ++layer) {
      cache.store(layer, pos, kChunk, &data.k[static_cast<size_t>(pos) * kv_row], &data.v[static_cast<size_t>(pos) * kv_row]);
      cache.attend(layer, pos, kChunk, &data.q[static_cast<size_t>(pos) * q_row], out.data(), pool);
    }
  return out;
}

// Exact attention of the queries of position p over `keys` (positions), with the f16-rounded keys and
// values: the largest |difference| from got (n_head * d).
double error_vs_exact(const Data& data, int p, const std::vector<int32_t>& keys, const float* got) {
  const model::KvShape s = shape();
  const std::vector<double> want =
      hcattn_test::exact_attention(s, &data.q[static_cast<size_t>(p) * s.n_head * s.head_dim], data.k.data(), data.v.data(), keys);
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - got[i]));
  return worst;
}

kv::HcConfig config(int cap, int star_block = 0) {
  kv::HcConfig cfg;
  cfg.calibration_tokens = 256;
  cfg.value_cap = cap;
  cfg.star_block = star_block;
  return cfg;
}

bool holds(const std::vector<int32_t>& held, int p) { return std::binary_search(held.begin(), held.end(), p); }


}  // namespace

int main() {
  const model::KvShape s = shape();
  const int d = s.head_dim, q_row = s.n_head * d;
  const Data data = make_data();
  cpu::ThreadPool pool(2);

  // Needles under a cap of a third of the positions.
  auto capped = kv::make_hc_kv_cache(s, kTokens + 1, config(kCap));
  fill(*capped, data, kv::AttendPhase::Global, pool);
  const std::vector<int32_t> held = capped->held_positions();
  int needles = 0, needles_held = 0;
  for (int p = 0; p < kTokens; ++p)
    if (is_needle(p)) needles_held += holds(held, p), ++needles;
  bool sinks_and_recent = true;
  for (int p = 0; p < 4; ++p) sinks_and_recent &= holds(held, p);
  for (int p = kTokens - 64; p < kTokens; ++p) sinks_and_recent &= holds(held, p);
  const size_t cap_bytes = static_cast<size_t>(kLayers) * s.n_head_kv * 2 * kCap * d * sizeof(uint16_t);
  std::printf("cap %d of %d positions: %zu held, %lld evicted, %d/%d needles held, host tier %zu bytes (cap's K+V %zu)\n", kCap,
              kTokens, held.size(), static_cast<long long>(capped->evicted_tokens()), needles_held, needles, capped->bytes().host, cap_bytes);
  CHECK(held.size() <= static_cast<size_t>(kCap) && held.size() >= static_cast<size_t>(kCap - kCap / 16));
  CHECK(static_cast<int64_t>(held.size()) + capped->evicted_tokens() == kTokens);
  CHECK(std::is_sorted(held.begin(), held.end()) && std::adjacent_find(held.begin(), held.end()) == held.end());
  CHECK(needles_held == needles && needles == 16);
  CHECK(sinks_and_recent);
  CHECK(capped->bytes().host <= cap_bytes);

  // A decode step along the needles: exact attention over every position ever stored is what it should
  // give, and over the held positions is what it computes (the selection's own error).
  std::vector<int32_t> every(kTokens + 1);
  for (int p = 0; p <= kTokens; ++p) every[p] = p;
  Data step = data;
  step.k.resize(step.k.size() + static_cast<size_t>(s.n_head_kv) * d, 0.0f);
  step.v.resize(step.v.size() + static_cast<size_t>(s.n_head_kv) * d, 0.0f);
  step.q.resize(step.q.size() + q_row);
  std::copy_n(&data.q[static_cast<size_t>(kTokens - 1) * q_row], q_row, &step.q[static_cast<size_t>(kTokens) * q_row]);
  std::vector<float> got(q_row);
  for (int layer = 0; layer < kLayers; ++layer) {
    capped->store(layer, kTokens, 1, &step.k[static_cast<size_t>(kTokens) * s.n_head_kv * d], &step.v[static_cast<size_t>(kTokens) * s.n_head_kv * d]);
    capped->attend(layer, kTokens, 1, &step.q[static_cast<size_t>(kTokens) * q_row], got.data(), pool);
  }
  std::vector<int32_t> held_now = capped->held_positions();
  const double vs_all = error_vs_exact(step, kTokens, every, got.data());
  const double vs_held = error_vs_exact(step, kTokens, held_now, got.data());
  std::printf("decode along the needles: max error %.2e vs exact over every position, %.2e over the held ones\n", vs_all, vs_held);
  CHECK(vs_all < 2e-2);
  CHECK(vs_held < 2e-3);

  // A cap the text never reaches: the same outputs as no cap, nothing evicted.
  auto none = kv::make_hc_kv_cache(s, kTokens, config(0));
  auto roomy = kv::make_hc_kv_cache(s, kTokens, config(kTokens));
  const std::vector<float> a = fill(*none, data, kv::AttendPhase::Global, pool);
  const std::vector<float> b = fill(*roomy, data, kv::AttendPhase::Global, pool);
  CHECK(hcattn_test::bit_equal(a, b));
  CHECK(roomy->evicted_tokens() == 0 && roomy->held_positions().size() == static_cast<size_t>(kTokens));
  CHECK(capped->bytes().host < none->bytes().host / 2);

  // Star-attention prefill under the cap: each query reads the anchor slots (the first star_block held)
  // and the held positions of its own block, exactly.
  const int star = 512;
  auto starred = kv::make_hc_kv_cache(s, kTokens, config(kCap, star));
  const std::vector<float> last = fill(*starred, data, kv::AttendPhase::Star, pool);
  const std::vector<int32_t> star_held = starred->held_positions();
  double star_error = 0;
  for (int t = 0; t < kChunk; t += 9) {
    const int p = kTokens - kChunk + t, from = p / star * star;
    std::vector<int32_t> keys;
    const auto block = std::lower_bound(star_held.begin(), star_held.end(), from);
    keys.assign(star_held.begin(), star_held.begin() + std::min<ptrdiff_t>(star, block - star_held.begin()));
    for (auto it = block; it != star_held.end() && *it <= p; ++it) keys.push_back(*it);
    star_error = std::max(star_error, error_vs_exact(data, p, keys, &last[static_cast<size_t>(t) * q_row]));
  }
  std::printf("star prefill under the cap: %lld evicted, max error vs exact over anchor + own block %.2e\n",
              static_cast<long long>(starred->evicted_tokens()), star_error);
  CHECK(starred->evicted_tokens() > 0);
  CHECK(star_error < 2e-5);

  // clone_prefix and truncate after evictions.
  const int cut = kTokens - 300;
  std::vector<int32_t> before;
  for (int32_t p : held_now)
    if (p < cut) before.push_back(p);
  auto clone = capped->clone_prefix(cut);
  auto* cloned = dynamic_cast<kv::HcKvCache*>(clone.get());
  CHECK(cloned && cloned->held_positions() == before && cloned->stored_tokens() == cut &&
        cloned->evicted_tokens() == cut - static_cast<int64_t>(before.size()));
  capped->truncate(cut);
  CHECK(capped->held_positions() == before && capped->evicted_tokens() == cut - static_cast<int64_t>(before.size()));
  for (int layer = 0; layer < kLayers; ++layer) {
    capped->store(layer, cut, kChunk, &data.k[static_cast<size_t>(cut) * s.n_head_kv * d], &data.v[static_cast<size_t>(cut) * s.n_head_kv * d]);
    capped->attend(layer, cut, 1, &data.q[static_cast<size_t>(cut) * q_row], got.data(), pool);
  }
  held_now = capped->held_positions();
  CHECK(held_now.back() == cut + kChunk - 1 && held_now.size() <= static_cast<size_t>(kCap));
  bool finite = true;
  for (float x : got) finite &= std::isfinite(x);
  CHECK(finite);

  // Saved and loaded: the same held positions, the same attention, and a load kept to a segment boundary
  // holds the positions before it.
  char tmpl[] = "/tmp/hcattn-evict-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const int n_saved = capped->stored_tokens(), boundary = 2000;
  kv::save_snapshot(dir + "/capped.hckv", *capped, "sha256:evict", std::vector<int32_t>(n_saved, 7),
                    {{"a", "h0", 0, boundary}, {"b", "h1", boundary, n_saved}});
  // Loaded with dense steps off: its first decode step selects, as the original's (whose heads found the
  // needle queries sharp) do; a head not judged yet would start with a dense step instead.
  kv::HcConfig selecting = config(kCap);
  selecting.dense_share = 0;
  kv::LoadedSnapshot loaded = kv::load_snapshot(dir + "/capped.hckv", "sha256:evict", s, selecting, kTokens + 1);
  kv::LoadedSnapshot part = kv::load_snapshot(dir + "/capped.hckv", "sha256:evict", s, config(kCap), kTokens + 1, boundary);
  std::system(("rm -rf " + dir).c_str());
  CHECK(loaded.cache->held_positions() == held_now && loaded.cache->evicted_tokens() == capped->evicted_tokens());
  std::vector<int32_t> below;
  for (int32_t p : held_now)
    if (p < boundary) below.push_back(p);
  CHECK(part.cache->held_positions() == below && part.cache->evicted_tokens() == boundary - static_cast<int64_t>(below.size()));
  std::vector<float> original(q_row), reloaded(q_row);
  for (int layer = 0; layer < kLayers; ++layer) {
    capped->attend(layer, n_saved - 1, 1, &data.q[static_cast<size_t>(n_saved - 1) * q_row], original.data(), pool);
    loaded.cache->attend(layer, n_saved - 1, 1, &data.q[static_cast<size_t>(n_saved - 1) * q_row], reloaded.data(), pool);
  }
  std::printf("saved after evicting %lld of %d tokens, loaded: held positions equal, attention bit-identical: %s\n",
              static_cast<long long>(capped->evicted_tokens()), n_saved, hcattn_test::bit_equal(original, reloaded) ? "yes" : "NO");
  CHECK(hcattn_test::bit_equal(original, reloaded));

  // Too small a cap, a chunk that cannot fit.
  const std::string small = hcattn_test::error_of([&] { kv::make_hc_kv_cache(s, kTokens, config(100)); });
  std::printf("cap 100: %s\n", small.c_str());
  CHECK(small.find("at least 196") != std::string::npos);
  auto tight = kv::make_hc_kv_cache(s, kTokens, config(256));
  fill(*tight, data, kv::AttendPhase::Global, pool, 256);
  const std::string chunk = hcattn_test::error_of([&] { tight->store(0, 256, 200, data.k.data(), data.v.data()); });
  std::printf("chunk of 200 into cap 256: %s\n", chunk.c_str());
  CHECK(chunk.find("raise the value cap or lower the batch size") != std::string::npos);
  return test_summary("kv_evict");
}
