// Dynamic token selection for HCAttention: per query head and step, keep the smallest set of tokens
// whose (approximate) softmax mass reaches top_p, plus the attention sinks and the recent window, at
// most k_max tokens from the top-p part. Found by a threshold search over a score histogram: O(n), no
// full sort, which matters at a million cached tokens.
#pragma once
#include <cstdint>
#include <vector>

namespace hcattn::kv {

struct SelectParams {
  float top_p = 0.9f;      // τ: softmax mass the selected set must reach
  int64_t sinks = 4;       // first tokens, always kept
  int64_t recent = 64;     // last tokens, always kept
  int64_t k_max = 0;       // cap on the top-p part (0: no cap)
  // Approximate scores carry errors of a few tenths to a few nats, so a token just below the top-p cut
  // may really be above it: every token within `margin` (in logits) of the cut is kept as well.
  float margin = 0.0f;
};

struct Selection {
  std::vector<int32_t> index;  // ascending token positions
  std::vector<float> weight;   // softmax of the scores over the selected tokens (sums to 1)
  double kept_mass = 0;        // share of the full softmax mass the selected tokens hold, in [0, 1]
};

// scores: n attention logits (already scaled by 1/sqrt(d)). The top-p set is the shortest prefix of the
// tokens ordered by (score descending, position ascending) whose mass reaches top_p of the total, plus
// every token whose upper bound reaches (lowest score in that prefix) - margin. upper[j] >= scores[j] bounds
// the exact logit of an approximate score (key-code residual levels, see codebook.h); without it the bound
// is the score itself.
void select_tokens(const float* scores, int64_t n, const SelectParams& params, Selection& out,
                   const float* upper = nullptr);

// The same selection by a full sort: the reference the fast path is tested against.
void select_tokens_reference(const float* scores, int64_t n, const SelectParams& params, Selection& out,
                             const float* upper = nullptr);

// Replaces the weights of `sel` by the softmax of the exact scores <q, k> * scale over the selected tokens,
// keys read from the host tier as f16 rows of `stride` elements. The approximate scores are good at ranking
// tokens but a logit error of 1 is a factor e in a weight; re-scoring the few selected tokens exactly fixes
// the weights among them.
void rescore_exact_f16(Selection& sel, const float* q, const uint16_t* keys, int64_t stride, int d, float scale);

// out[0..d) = sum over selected tokens of weight * value, values stored as f16 rows of `stride` elements.
void attend_values_f16(const Selection& sel, const uint16_t* values, int64_t stride, int d, float* out);

}  // namespace hcattn::kv
