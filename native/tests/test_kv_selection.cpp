// Dynamic selection: the histogram threshold search equals the full-sort reference on random and
// adversarial score vectors; sinks and recent tokens are always kept; weights sum to 1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kv/selection.h"
#include "test_util.h"

using namespace hcattn::kv;

namespace {

int cases = 0;

void compare(const std::vector<float>& s, const SelectParams& p, const char* what) {
  Selection fast, ref;
  select_tokens(s.data(), static_cast<int64_t>(s.size()), p, fast);
  select_tokens_reference(s.data(), static_cast<int64_t>(s.size()), p, ref);
  ++cases;
  const bool same = fast.index == ref.index;
  if (!same) std::fprintf(stderr, "mismatch on %s: fast %zu tokens, reference %zu\n", what, fast.index.size(), ref.index.size());
  CHECK(same);
  if (!same) return;
  double sum = 0, max_dw = 0;
  for (size_t i = 0; i < fast.weight.size(); ++i) {
    sum += fast.weight[i];
    max_dw = std::max(max_dw, static_cast<double>(std::fabs(fast.weight[i] - ref.weight[i])));
  }
  CHECK(fast.index.empty() || std::fabs(sum - 1.0) < 1e-5);
  CHECK(max_dw < 1e-7);
  const int64_t n = static_cast<int64_t>(s.size());
  // Sinks and the recent window are always present.
  for (int64_t i = 0; i < std::min(p.sinks, n); ++i) CHECK(std::binary_search(fast.index.begin(), fast.index.end(), i));
  for (int64_t i = std::max<int64_t>(0, n - p.recent); i < n; ++i)
    CHECK(std::binary_search(fast.index.begin(), fast.index.end(), i));
  // The kept mass reaches top_p (unless capped by k_max).
  if (p.k_max == 0) CHECK(fast.kept_mass >= p.top_p - 1e-9);
}

}  // namespace

int main() {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t n = std::uniform_int_distribution<int64_t>(1, 20000)(rng);
    const float sigma = std::uniform_real_distribution<float>(0.1f, 12.0f)(rng);
    std::normal_distribution<float> nd(0.0f, sigma);
    std::vector<float> s(n);
    for (auto& x : s) x = nd(rng);
    SelectParams p;
    p.top_p = std::uniform_real_distribution<float>(0.5f, 0.999f)(rng);
    p.sinks = trial % 5;
    p.recent = trial % 3 == 0 ? 0 : 32;
    p.k_max = trial % 4 == 0 ? 64 : 0;
    p.margin = trial % 2 == 0 ? 0.0f : 1.5f;
    compare(s, p, "random normal");
  }

  SelectParams p;
  // All scores equal: the first ceil(top_p * n) positions.
  compare(std::vector<float>(10000, 1.5f), p, "all equal");
  // One spike far above the rest.
  std::vector<float> spike(50000, 0.0f);
  spike[31337] = 60.0f;
  compare(spike, p, "single spike");
  // Two plateaus: the boundary falls inside a block of ties.
  std::vector<float> plateaus(30000, -2.0f);
  for (int i = 0; i < 30000; i += 3) plateaus[i] = 4.0f;
  compare(plateaus, p, "plateaus");
  SelectParams with_margin = p;
  with_margin.margin = 2.0f;
  compare(plateaus, with_margin, "plateaus with margin");
  compare(spike, with_margin, "spike with margin");
  // Scores on exact histogram bin edges and very negative outliers.
  std::vector<float> edges(8192);
  for (int i = 0; i < 8192; ++i) edges[i] = -static_cast<float>(i % 512) * (40.0f / 4096.0f);
  edges[100] = -1e30f;
  edges[200] = -std::numeric_limits<float>::max();
  compare(edges, p, "bin edges");
  // A long tail below the histogram range (searched as one last bin), and a tail inside the range that
  // carries most of the mass.
  std::vector<float> tail(200000, -45.0f);
  tail[0] = 0.0f;
  compare(tail, p, "tail below range");
  std::fill(tail.begin() + 1, tail.end(), -10.0f);
  compare(tail, p, "heavy tail");
  // top_p = 1 keeps everything with non-zero mass; top_p = 0 only sinks and recent.
  SelectParams all = p;
  all.top_p = 1.0f;
  std::vector<float> ramp(5000);
  for (int i = 0; i < 5000; ++i) ramp[i] = static_cast<float>(i) * 1e-3f;
  compare(ramp, all, "top_p 1");
  SelectParams none = p;
  none.top_p = 0.0f;
  compare(ramp, none, "top_p 0");
  // Fewer tokens than sinks + recent.
  compare(std::vector<float>{1.0f, 2.0f, 3.0f}, p, "tiny");
  // A million tokens.
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> big(1 << 20);
  for (auto& x : big) x = nd(rng);
  compare(big, p, "1M normal");

  std::printf("%d selection cases compared with the sort reference\n", cases);
  return test_summary("kv_selection");
}
