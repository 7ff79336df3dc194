#include "model/rope.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace hcattn::model {

namespace {

// The dimension at which rotations of n_rot_per_ctx turns over the original context begin (YaRN).
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot_per_ctx, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (n_rot_per_ctx * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

}  // namespace

Rope::Rope(const Hparams& h, std::vector<float> freq_factors)
    : n_rot_(h.n_rot),
      head_dim_(h.head_dim),
      theta_scale_(std::pow(h.rope_freq_base, -2.0f / static_cast<float>(h.n_rot))),
      freq_scale_(h.rope_freq_scale),
      ext_factor_(h.yarn_ext_factor),
      attn_factor_(h.yarn_attn_factor),
      freq_factors_(std::move(freq_factors)) {
  if (!freq_factors_.empty() && static_cast<int>(freq_factors_.size()) != n_rot_ / 2) {
    throw Error("rope_freqs.weight has " + std::to_string(freq_factors_.size()) + " values, expected " +
                std::to_string(n_rot_ / 2) + " (half the rotated dimensions)");
  }
  if (ext_factor_ != 0.0f) {
    const float start = std::floor(yarn_corr_dim(n_rot_, h.rope_n_ctx_orig, h.yarn_beta_fast, h.rope_freq_base));
    const float end = std::ceil(yarn_corr_dim(n_rot_, h.rope_n_ctx_orig, h.yarn_beta_slow, h.rope_freq_base));
    corr_low_ = std::max(0.0f, start);
    corr_high_ = std::min(static_cast<float>(n_rot_ - 1), end);
  }
}

void Rope::angles(int pos, float* cs) const {
  // theta_k = pos * theta_scale^k, built by multiplication so the float rounding matches llama.cpp.
  float theta = static_cast<float>(pos);
  for (int i0 = 0; i0 < n_rot_; i0 += 2) {
    const float ff = freq_factors_.empty() ? 1.0f : freq_factors_[i0 / 2];
    const float theta_extrap = theta / ff;
    const float theta_interp = freq_scale_ * theta_extrap;
    float angle = theta_interp;
    float mscale = attn_factor_;
    if (ext_factor_ != 0.0f) {
      const float y = (static_cast<float>(i0 / 2) - corr_low_) / std::max(0.001f, corr_high_ - corr_low_);
      const float ramp_mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * ext_factor_;
      angle = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
      mscale *= 1.0f + 0.1f * std::log(1.0f / freq_scale_);
    }
    cs[i0] = std::cos(angle) * mscale;
    cs[i0 + 1] = std::sin(angle) * mscale;
    theta *= theta_scale_;
  }
}

void Rope::rotate(float* x, int n_heads, const float* cs) const {
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim_;
    for (int i0 = 0; i0 < n_rot_; i0 += 2) {
      const float x0 = v[i0], x1 = v[i0 + 1];
      v[i0] = x0 * cs[i0] - x1 * cs[i0 + 1];
      v[i0 + 1] = x0 * cs[i0 + 1] + x1 * cs[i0];
    }
  }
}

}  // namespace hcattn::model
