#include <algorithm>
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "model/hparams.h"

namespace hcattn::cuda {

namespace {

constexpr int kMaxRot = 512;

// One block per token: thread 0 builds the angle sequence by repeated multiplication (the rounding
// the CPU path and llama.cpp have), then all threads take cos/sin and rotate every head.
__global__ void rope_kernel(float* x, const int32_t* __restrict__ positions, int n_heads, RopeParams p,
                            const float* __restrict__ freq_factors) {
  __shared__ float theta[kMaxRot / 2];
  __shared__ float cs[kMaxRot];
  const int half = p.n_rot / 2;
  if (threadIdx.x == 0) {
    float t = static_cast<float>(positions[blockIdx.x]);
    for (int i = 0; i < half; ++i) {
      theta[i] = t;
      t *= p.theta_scale;
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float theta_extrap = theta[i] / ff;
    const float theta_interp = p.freq_scale * theta_extrap;
    float angle = theta_interp;
    float mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) {
      const float y = (static_cast<float>(i) - p.corr_low) / fmaxf(0.001f, p.corr_high - p.corr_low);
      const float ramp_mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * p.ext_factor;
      // Angles reach millions of radians at long context, where one rounding step is a visible
      // rotation: keep the CPU's separate multiply and add (no fused multiply-add).
      angle = __fadd_rn(__fmul_rn(theta_interp, 1.0f - ramp_mix), __fmul_rn(theta_extrap, ramp_mix));
      mscale *= 1.0f + 0.1f * logf(1.0f / p.freq_scale);
    }
    float s, c;
    sincosf(angle, &s, &c);
    cs[2 * i] = c * mscale;
    cs[2 * i + 1] = s * mscale;
  }
  __syncthreads();
  float* xt = x + static_cast<size_t>(blockIdx.x) * n_heads * p.head_dim;
  for (int idx = threadIdx.x; idx < n_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float* v = xt + static_cast<size_t>(h) * p.head_dim + 2 * i;
    const float x0 = v[0], x1 = v[1];
    v[0] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
    v[1] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
  }
}

// Where YaRN's ramp begins and ends, in rotated dimensions (llama.cpp's ggml_rope_yarn_corr_dims).
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot_per_ctx, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (n_rot_per_ctx * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

}  // namespace

RopeParams rope_params(const model::Hparams& h) {
  RopeParams p;
  p.n_rot = h.n_rot;
  p.head_dim = h.head_dim;
  p.theta_scale = std::pow(h.rope_freq_base, -2.0f / static_cast<float>(h.n_rot));
  p.freq_scale = h.rope_freq_scale;
  p.ext_factor = h.yarn_ext_factor;
  p.attn_factor = h.yarn_attn_factor;
  if (p.ext_factor != 0.0f) {
    const float start = std::floor(yarn_corr_dim(h.n_rot, h.rope_n_ctx_orig, h.yarn_beta_fast, h.rope_freq_base));
    const float end = std::ceil(yarn_corr_dim(h.n_rot, h.rope_n_ctx_orig, h.yarn_beta_slow, h.rope_freq_base));
    p.corr_low = std::max(0.0f, start);
    p.corr_high = std::min(static_cast<float>(h.n_rot - 1), end);
  }
  return p;
}

void rope_apply(float* x, const int32_t* positions, int n_tokens, int n_heads, const RopeParams& p,
                const float* freq_factors, cudaStream_t stream) {
  if (p.n_rot <= 0 || p.n_rot > kMaxRot || p.n_rot % 2 != 0 || p.n_rot > p.head_dim) {
    throw Error("CUDA RoPE: n_rot " + std::to_string(p.n_rot) + " must be even and at most min(head_dim, " +
                std::to_string(kMaxRot) + ")");
  }
  if (n_tokens <= 0) return;
  rope_kernel<<<n_tokens, 128, 0, stream>>>(x, positions, n_heads, p, freq_factors);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
