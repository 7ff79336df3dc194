#include "kv/selection.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kv/f16_rows.h"

namespace hcattn::kv {

namespace {

// Orders tokens by score descending, then position ascending: the order that defines the top-p prefix.
struct ByScore {
  const float* s;
  bool operator()(int32_t a, int32_t b) const { return s[a] > s[b] || (s[a] == s[b] && a < b); }
};

// e[j] = exp(scores[j] - max_score) for all n tokens; returns their sum. Both selections weigh tokens with
// these same floats (vector exponentials: this runs once per head, layer and step over the whole cache).
double exponentials(const float* scores, int64_t n, float max_score, std::vector<float>& e) {
  e.assign(scores, scores + n);
  return exp_shifted(e.data(), n, max_score);
}

// Adds sinks and recent tokens to the top-p part, sorts positions, and computes renormalised weights
// (e: exponentials()).
void finish(const float* scores, const std::vector<float>& e, int64_t n, const SelectParams& p, double total,
            std::vector<int32_t>& chosen, Selection& out) {
  if (p.k_max > 0 && static_cast<int64_t>(chosen.size()) > p.k_max) {
    std::nth_element(chosen.begin(), chosen.begin() + p.k_max, chosen.end(), ByScore{scores});
    chosen.resize(p.k_max);
  }
  const int64_t sinks = std::min(p.sinks, n);
  const int64_t recent_from = std::max<int64_t>(sinks, n - std::max<int64_t>(p.recent, 0));
  if (static_cast<int64_t>(chosen.size()) * 32 < n) {
    // Few chosen (a sharp head): sorted together with the sinks and the recent window, duplicates dropped,
    // instead of three passes over every position.
    for (int64_t j = 0; j < sinks; ++j) chosen.push_back(static_cast<int32_t>(j));
    for (int64_t j = recent_from; j < n; ++j) chosen.push_back(static_cast<int32_t>(j));
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  } else {
    // Ascending and without duplicates through a mark per position: O(n), where sorting a million chosen
    // positions took longer than the scoring. (A reference to the thread's buffer: the loops below then do
    // not look the thread-local up per element.)
    thread_local std::vector<uint8_t> mark_buffer;
    std::vector<uint8_t>& mark = mark_buffer;
    mark.assign(n, 0);
    for (int32_t j : chosen) mark[j] = 1;
    std::fill(mark.begin(), mark.begin() + sinks, 1);
    std::fill(mark.begin() + recent_from, mark.end(), 1);
    chosen.clear();
    int64_t count = 0;
    for (int64_t j = 0; j < n; ++j) count += mark[j];
    chosen.resize(count);
    int32_t* next = chosen.data();
    for (int64_t j = 0; j < n; ++j)
      if (mark[j]) *next++ = static_cast<int32_t>(j);
  }

  out.index = std::move(chosen);
  out.weight.resize(out.index.size());
  double sum = 0;
  for (size_t i = 0; i < out.index.size(); ++i) sum += (out.weight[i] = e[out.index[i]]);
  for (float& w : out.weight) w = static_cast<float>(w / sum);
  out.kept_mass = total > 0 ? sum / total : 1.0;
}

}  // namespace

void select_tokens_reference(const float* scores, int64_t n, const SelectParams& p, Selection& out, const float* upper) {
  out = Selection{};
  if (n <= 0) return;
  const float m = *std::max_element(scores, scores + n);
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), ByScore{scores});
  std::vector<float> e;
  const double total = exponentials(scores, n, m, e);
  const double target = p.top_p * total;
  double cum = 0;
  std::vector<int32_t> chosen;
  size_t taken = 0;
  for (; taken < order.size() && cum < target; ++taken) {
    chosen.push_back(order[taken]);
    cum += e[order[taken]];
  }
  if (!chosen.empty() && (p.margin > 0 || upper)) {
    const float cut = scores[chosen.back()] - p.margin;
    const float* reach = upper ? upper : scores;
    for (; taken < order.size(); ++taken)
      if (reach[order[taken]] >= cut) chosen.push_back(order[taken]);
  }
  finish(scores, e, n, p, total, chosen, out);
}

void select_tokens(const float* scores, int64_t n, const SelectParams& p, Selection& out, const float* upper) {
  out = Selection{};
  if (n <= 0) return;
  const float m = max_of(scores, n);  // vector max: std::max_element was 40% of a sparse million-token selection

  // Histogram of scores over [m - kRange, m]: a token below that range weighs less than e^-kRange of the
  // top one, so all of them together cannot decide a top_p < 1 cut unless there are ~e^kRange of them;
  // they form one last bin that is searched like the others.
  constexpr float kRange = 40.0f;
  constexpr int kBins = 4096;
  // The thread's buffers, through references so that the loops do not look thread-locals up per element.
  thread_local std::vector<double> bin_mass_buffer;
  thread_local std::vector<int64_t> bin_count_buffer;
  thread_local std::vector<uint16_t> bin_of_buffer;
  thread_local std::vector<float> e_buffer;
  std::vector<double>& bin_mass = bin_mass_buffer;
  std::vector<int64_t>& bin_count = bin_count_buffer;
  std::vector<uint16_t>& bin_of = bin_of_buffer;
  std::vector<float>& e = e_buffer;
  bin_mass.assign(kBins + 1, 0.0);
  bin_count.assign(kBins + 1, 0);
  bin_of.resize(n);
  const double total = exponentials(scores, n, m, e);
  // Bins first (a loop the compiler vectorizes; clamped before the conversion, so -inf and far scores
  // land in the last bin), then the masses.
  uint16_t* bins = bin_of.data();
  for (int64_t j = 0; j < n; ++j) bins[j] = static_cast<uint16_t>(std::min((m - scores[j]) * (kBins / kRange), static_cast<float>(kBins)));
  for (int64_t j = 0; j < n; ++j) {
    bin_mass[bins[j]] += e[j];
    ++bin_count[bins[j]];
  }
  const double target = p.top_p * total;

  // Walk bins from the top until the next one would reach the target: that bin holds the boundary.
  double cum = 0;
  int boundary = 0;
  for (; boundary < kBins; ++boundary) {
    if (cum + bin_mass[boundary] >= target) break;
    cum += bin_mass[boundary];
  }
  if (target <= 0) boundary = -1;  // top_p <= 0: nothing beyond sinks and recent

  // Tokens above the boundary bin and in it, written without branches or calls in the loop (each index is
  // stored, the cursor advances only when it belongs; one spare slot per list takes the last store).
  int64_t above = 0;
  for (int b = 0; b < boundary; ++b) above += bin_count[b];
  const int64_t at_edge = boundary >= 0 ? bin_count[boundary] : 0;
  std::vector<int32_t> chosen(static_cast<size_t>(above + 1));
  std::vector<int32_t> edge(static_cast<size_t>(at_edge + 1));
  {
    int32_t* into_chosen = chosen.data();
    int32_t* into_edge = edge.data();
    const int bound = boundary;
    for (int64_t j = 0; j < n; ++j) {
      const int b = bins[j];
      *into_chosen = static_cast<int32_t>(j);
      into_chosen += b < bound;
      *into_edge = static_cast<int32_t>(j);
      into_edge += b == bound;
    }
  }
  chosen.resize(static_cast<size_t>(above));
  edge.resize(static_cast<size_t>(at_edge));
  // Inside the boundary bin, take tokens in score order until the mass reaches the target.
  std::sort(edge.begin(), edge.end(), ByScore{scores});
  size_t taken = 0;
  for (; taken < edge.size() && cum < target; ++taken) {
    chosen.push_back(edge[taken]);
    cum += e[edge[taken]];
  }
  if (!chosen.empty() && (p.margin > 0 || upper)) {
    // The rest of the boundary bin and everything below it whose bound reaches the cut; chosen.back() is
    // the last prefix token only when the boundary bin contributed one, so take the minimum over the prefix.
    float lowest = scores[chosen.front()];
    for (int32_t j : chosen) lowest = std::min(lowest, scores[j]);
    const float cut = lowest - p.margin;
    const float* reach = upper ? upper : scores;
    for (; taken < edge.size(); ++taken)
      if (reach[edge[taken]] >= cut) chosen.push_back(edge[taken]);
    // Below the boundary bin: blocks compacted without branches, then appended.
    int32_t block[256];
    for (int64_t j0 = 0; j0 < n; j0 += 256) {
      const int64_t j1 = std::min<int64_t>(n, j0 + 256);
      int k = 0;
      for (int64_t j = j0; j < j1; ++j) {
        block[k] = static_cast<int32_t>(j);
        k += (bins[j] > boundary) & (reach[j] >= cut);
      }
      chosen.insert(chosen.end(), block, block + k);
    }
  }
  finish(scores, e, n, p, total, chosen, out);
}

void rescore_exact_f16(Selection& sel, const float* q, const uint16_t* keys, int64_t stride, int d, float scale) {
  if (sel.index.empty()) return;
  std::vector<double> s(sel.index.size());
  double m = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < sel.index.size(); ++i) {
    s[i] = static_cast<double>(dot_f16(q, keys + static_cast<int64_t>(sel.index[i]) * stride, d)) * scale;
    m = std::max(m, s[i]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - m));
  for (size_t i = 0; i < s.size(); ++i) sel.weight[i] = static_cast<float>(s[i] / sum);
}

void attend_values_f16(const Selection& sel, const uint16_t* values, int64_t stride, int d, float* out) {
  std::fill(out, out + d, 0.0f);
  for (size_t i = 0; i < sel.index.size(); ++i) {
    axpy_f16(sel.weight[i], values + static_cast<int64_t>(sel.index[i]) * stride, out, d);
  }
}

}  // namespace hcattn::kv
