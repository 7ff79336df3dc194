// RoPE on the GPU as the CPU path (model/rope.cpp) and llama.cpp apply it to llama models: adjacent
// pairs, angles built by repeated float multiplication, optional rope_freqs divisors, linear or YaRN
// scaling.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::model {
struct Hparams;
}

namespace hcattn::cuda {

struct RopeParams {
  int n_rot = 0;
  int head_dim = 0;
  float theta_scale = 0;  // base^(-2/n_rot)
  float freq_scale = 1;
  float ext_factor = 0;
  float attn_factor = 1;
  float corr_low = 0, corr_high = 0;  // YaRN ramp, used only when ext_factor != 0
};

// The same constants model::Rope derives from the hyperparameters.
RopeParams rope_params(const model::Hparams& h);

// x: (n_tokens, n_heads, head_dim) on the device, rotated in place; positions: (n_tokens) int32 on
// the device; freq_factors: (n_rot / 2) on the device or nullptr.
void rope_apply(float* x, const int32_t* positions, int n_tokens, int n_heads, const RopeParams& p,
                const float* freq_factors, cudaStream_t stream);

}  // namespace hcattn::cuda
