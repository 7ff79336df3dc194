// Rotary position embedding as llama.cpp applies it to llama models (FORMATS.md §5.4): rope type NORM
// (adjacent pairs x[2i], x[2i+1] rotate together), angles from the position by repeated float
// multiplication, optional per-pair frequency factors (Llama-3.1 rope_freqs), linear and YaRN scaling.
#pragma once
#include <vector>

#include "model/hparams.h"

namespace hcattn::model {

class Rope {
 public:
  // freq_factors: n_rot/2 divisors of the angle (the rope_freqs tensor), or empty.
  Rope(const Hparams& h, std::vector<float> freq_factors);

  // cos and sin for every pair at position pos: cs[2i] = cos, cs[2i+1] = sin (n_rot values).
  void angles(int pos, float* cs) const;
  // Rotates the first n_rot channels of each of n_heads heads (head_dim apart) in place.
  void rotate(float* x, int n_heads, const float* cs) const;
  int n_rot() const { return n_rot_; }

 private:
  int n_rot_;
  int head_dim_;
  float theta_scale_;
  float freq_scale_;
  float ext_factor_;
  float attn_factor_;
  float corr_low_ = 0, corr_high_ = 0;
  std::vector<float> freq_factors_;
};

}  // namespace hcattn::model
