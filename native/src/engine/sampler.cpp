// Token sampling: repetition penalty → top-k → top-p → temperature → draw (llama.cpp's chain order).
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "common/error.h"
#include "hcattn/engine.h"

namespace hcattn {

Sampler::Sampler(const SamplingParams& params, int n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_state_(params.seed ^ 0x9E3779B97F4A7C15ull) {
  if (n_vocab <= 0) throw Error("sampler: vocabulary size must be positive");
  if (params.repeat_penalty <= 0.0f) throw Error("sampler: repeat_penalty must be > 0 (1 turns it off)");
}

void Sampler::accept(Token token) {
  recent_.push_back(token);
  const size_t keep = static_cast<size_t>(std::max(0, params_.repeat_last_n));
  if (recent_.size() > 2 * keep + 64) recent_.erase(recent_.begin(), recent_.end() - keep);
}

// splitmix64: a small generator whose sequence depends only on the seed, on every platform.
double Sampler::next_uniform() {
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

Token Sampler::sample(const float* logits) {
  penalized_.assign(logits, logits + n_vocab_);
  if (params_.repeat_penalty != 1.0f && params_.repeat_last_n > 0) {
    const size_t n = std::min(recent_.size(), static_cast<size_t>(params_.repeat_last_n));
    std::unordered_set<Token> seen(recent_.end() - n, recent_.end());
    for (Token t : seen) {
      if (t < 0 || t >= n_vocab_) continue;
      float& l = penalized_[t];
      l = l <= 0.0f ? l * params_.repeat_penalty : l / params_.repeat_penalty;
    }
  }
  if (params_.temperature <= 0.0f) {
    return static_cast<Token>(std::max_element(penalized_.begin(), penalized_.end()) - penalized_.begin());
  }

  candidates_.resize(n_vocab_);
  for (int i = 0; i < n_vocab_; ++i) candidates_[i] = {i, penalized_[i]};
  const auto more_likely = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  size_t n = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    n = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + n, candidates_.end(), more_likely);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), more_likely);
  }

  if (params_.top_p < 1.0f) {
    // Keep the smallest most-likely prefix whose probability (before temperature) reaches top_p.
    const float max_logit = candidates_[0].logit;
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) total += std::exp(static_cast<double>(candidates_[i].logit - max_logit));
    double cumulative = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cumulative += std::exp(static_cast<double>(candidates_[i].logit - max_logit)) / total;
      if (cumulative >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }

  const double inv_t = 1.0 / params_.temperature;
  const float max_logit = candidates_[0].logit;
  double total = 0.0;
  std::vector<double> weights(n);
  for (size_t i = 0; i < n; ++i) {
    weights[i] = std::exp((candidates_[i].logit - max_logit) * inv_t);
    total += weights[i];
  }
  double r = next_uniform() * total;
  for (size_t i = 0; i < n; ++i) {
    r -= weights[i];
    if (r < 0.0) return candidates_[i].id;
  }
  return candidates_[n - 1].id;
}

}  // namespace hcattn
