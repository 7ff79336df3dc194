// The HCAttention cache behind the model's KvCache interface: equal to the plain f16 cache when nothing
// is dropped, star attention reads exactly the sinks and the query's block, a truncated-and-continued
// context equals a fresh one bit for bit, and the measured fast-tier bytes follow the budget.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cpu/threadpool.h"
#include "kv/hc_cache.h"
#include "model/kv_cache.h"
#include "kv_test_util.h"
#include "test_util.h"

using namespace hcattn;

namespace {

model::KvShape shape() {
  return hcattn_test::kv_shape(2, 4, 2, 16);
}

std::vector<float> random_rows(int n, int width, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n) * width);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Stores n positions in chunks of `chunk` into every layer, returning the attention output of the last
// chunk's queries for layer 1.
std::vector<float> fill(model::KvCache& cache, int from, int n, int chunk, const std::vector<float>& k,
                        const std::vector<float>& v, const std::vector<float>& q, cpu::ThreadPool& pool) {
  const model::KvShape s = shape();
  const int kv_row = s.n_head_kv * s.head_dim, q_row = s.n_head * s.head_dim;
  std::vector<float> out;
  for (int pos = from; pos < n; pos += chunk) {
    const int m = std::min(chunk, n - pos);
    out.assign(static_cast<size_t>(m) * q_row, 0.0f);
    for (int layer = 0; layer < s.n_layer; ++layer) {
      cache.store(layer, pos, m, &k[static_cast<size_t>(pos) * kv_row], &v[static_cast<size_t>(pos) * kv_row]);
      cache.attend(layer, pos, m, &q[static_cast<size_t>(pos) * q_row], out.data(), pool);
    }
  }
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

int main() {
  cpu::ThreadPool pool(2);
  const model::KvShape s = shape();
  const int n = 2000;
  const auto k = random_rows(n, s.n_head_kv * s.head_dim, 1);
  const auto v = random_rows(n, s.n_head_kv * s.head_dim, 2);
  const auto q = random_rows(n, s.n_head * s.head_dim, 3);

  // Nothing dropped (top_p = 1): equal to the plain f16 cache up to f16 rounding of q and p there.
  for (auto budget : {kv::KeyBudget::Half, kv::KeyBudget::Quarter, kv::KeyBudget::Eighth}) {
    kv::HcConfig cfg;
    cfg.budget = budget;
    cfg.select.top_p = 1.0f;
    cfg.calibration_tokens = 512;
    auto hc = kv::make_hc_kv_cache(s, n, cfg);
    auto full = model::make_full_kv_cache(s, n, model::KvStorage::F16);
    const auto a = fill(*hc, 0, n, 1, k, v, q, pool);
    const auto b = fill(*full, 0, n, 1, k, v, q, pool);
    const double diff = max_abs_diff(a, b);
    std::printf("budget %-5s top_p=1: max |hc - full f16| = %.2e (calibrated: %d)\n", kv::key_budget_name(budget), diff,
                static_cast<int>(hc->calibrated(1)));
    CHECK(diff < 2e-3);
    CHECK(budget == kv::KeyBudget::Half || hc->calibrated(1));
  }

  // Measured bytes per token at each budget, relative to f16 K+V (2 * d * 2 bytes per layer and KV head).
  // With at most 256 centroids a code takes 12 bits (kv/code_tiles.h), 3/4 of the budget's 16-bit words.
  const double f16_per_token = 2.0 * s.head_dim * 2 * s.n_layer * s.n_head_kv;
  for (auto [budget, expected] : {std::pair{kv::KeyBudget::Half, 0.5}, {kv::KeyBudget::Quarter, 0.1875}, {kv::KeyBudget::Eighth, 0.09375}}) {
    kv::HcConfig cfg;
    cfg.budget = budget;
    cfg.calibration_tokens = 512;
    cfg.centroids = 64;
    auto hc = kv::make_hc_kv_cache(s, 1 << 16, cfg);
    const int m = 1 << 16;
    const auto kk = random_rows(m, s.n_head_kv * s.head_dim, 9);
    for (int layer = 0; layer < s.n_layer; ++layer) hc->store(layer, 0, m, kk.data(), kk.data());
    const kv::TierBytes b = hc->bytes();
    const double fast = b.fast / static_cast<double>(m) / f16_per_token;
    std::printf("budget %-5s: fast tier %.4f of f16 K+V, host tier %.2f bytes/token\n", kv::key_budget_name(budget), fast,
                b.host / static_cast<double>(m));
    // Overhead over the codes: the codebooks (d * c floats per layer and head, 1/1024 here) and the tail
    // estimate's block means (d f16 per 64 positions: 1/128 of f16 K+V).
    CHECK(fast >= expected && fast < expected + 1.0 / 128 + 0.002);
  }

  // Appending one position at a time grows the tiers by doubling, but never past the context's capacity:
  // a full context holds exactly its capacity's keys and values.
  {
    kv::HcConfig cfg;
    cfg.calibration_tokens = 64;
    const int cap = 1000;
    auto hc = kv::make_hc_kv_cache(s, cap, cfg);
    const auto kk = random_rows(cap, s.n_head_kv * s.head_dim, 10);
    const size_t row = static_cast<size_t>(s.n_head_kv) * s.head_dim;
    for (int p = 0; p < cap; ++p)
      for (int layer = 0; layer < s.n_layer; ++layer) hc->store(layer, p, 1, &kk[p * row], &kk[p * row]);
    const size_t kv_bytes = static_cast<size_t>(cap) * row * 2 * 2 * s.n_layer;  // f16 keys and values
    std::printf("capacity %d filled one position at a time: host tier %zu bytes (keys and values %zu)\n", cap, hc->bytes().host,
                kv_bytes);
    CHECK(hc->bytes().host == kv_bytes);
  }

  // Star attention: a prefill query reads exactly the anchor (first block) and its own block.
  {
    kv::HcConfig cfg;
    cfg.star_block = 256;
    cfg.select.sinks = 4;
    cfg.calibration_tokens = 512;
    auto hc = kv::make_hc_kv_cache(s, n, cfg);
    const auto star = fill(*hc, 0, 1024, 512, k, v, q, pool);  // chunk [512, 1024): blocks 512 and 768
    // Reference: the same queries against a full cache holding only anchor + block, at the same positions.
    const int hd = s.head_dim, q_row = s.n_head * hd, kv_row = s.n_head_kv * hd;
    double worst = 0;
    for (int t = 0; t < 512; t += 37) {
      const int p = 512 + t, block = p / 256 * 256;
      for (int h = 0; h < s.n_head; ++h) {
        const int kvh = h / 2;
        std::vector<int> idx;
        for (int j = 0; j < 256; ++j) idx.push_back(j);
        for (int j = block; j <= p; ++j) idx.push_back(j);
        std::vector<double> w;
        double m = -1e300;
        for (int j : idx) {
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += q[static_cast<size_t>(p) * q_row + h * hd + i] * k[static_cast<size_t>(j) * kv_row + kvh * hd + i];
          w.push_back(dot * s.kq_scale);
          m = std::max(m, w.back());
        }
        double sum = 0;
        for (double& x : w) sum += (x = std::exp(x - m));
        for (int i = 0; i < hd; ++i) {
          double o = 0;
          for (size_t a = 0; a < idx.size(); ++a) o += w[a] / sum * v[static_cast<size_t>(idx[a]) * kv_row + kvh * hd + i];
          worst = std::max(worst, std::fabs(o - star[static_cast<size_t>(t) * q_row + h * hd + i]));
        }
      }
    }
    std::printf("star attention vs exact anchor+block: max abs diff %.2e\n", worst);
    CHECK(worst < 5e-3);
  }

  // Truncate to 1250 and continue = fresh prefill of the same tokens, bit for bit (default selection).
  {
    kv::HcConfig cfg;
    cfg.calibration_tokens = 1000;
    cfg.select.recent = 32;
    auto fresh = kv::make_hc_kv_cache(s, n, cfg);
    const auto a = fill(*fresh, 0, n, 250, k, v, q, pool);
    auto first = kv::make_hc_kv_cache(s, n, cfg);
    fill(*first, 0, 1500, 500, k, v, q, pool);
    auto truncated = first->clone_prefix(1250);
    const auto b = fill(*truncated, 1250, n, 250, k, v, q, pool);
    CHECK(a.size() == b.size() && max_abs_diff(a, b) == 0.0);
    // Truncating below the calibration point drops the codebooks; the continuation recalibrates the same way.
    auto early = first->clone_prefix(600);
    const auto c = fill(*early, 500, n, 250, k, v, q, pool);
    CHECK(c.size() == a.size() && max_abs_diff(a, c) == 0.0);
  }
  return test_summary("kv_cache");
}
