// The CUDA backend: the llama forward pass of model/llama_forward.cpp on the GPU, stage for stage
// (embed → per layer [RMSNorm → Q,K,V → RoPE → attention → Wo → residual → RMSNorm → SwiGLU FFN →
// residual] → RMSNorm → logits), with the weights uploaded once in their GGUF blocks.
//
// Attention: a DeviceKvCache (the `full` mode of contexts made by this backend) keeps keys and values
// in device memory and runs the chunk-attention kernel there. Any other cache (the HCAttention
// budgets, whose state lives in host memory) gets the post-RoPE q, k, v copied to the host, stores
// and attends on CPU threads through the model::KvCache interface, and the attention output is copied
// back: every KV mode works on this backend, the HCAttention ones at the host cache's speed.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "cuda/matmul.cuh"
#include "cuda/rope.cuh"
#include "cuda/runtime.h"
#include "engine/backend.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "model/rope.h"

namespace hcattn::cuda {

class CudaLlama final : public engine::Backend {
 public:
  // Uploads a loaded model's weights (throws when a type is not supported or GPU memory is short).
  CudaLlama(const model::Llama& llama, cpu::ThreadPool& pool);
  // A model of this shape with random weights of one type made on the device (benchmarks: no
  // multi-GB file). Norm weights are 1; no rope_freqs.
  CudaLlama(const model::Hparams& h, quant::GgmlType type, uint64_t seed, cpu::ThreadPool& pool);
  ~CudaLlama() override;

  const char* name() const override { return "cuda"; }
  std::string description() const override { return description_; }
  std::unique_ptr<model::KvCache> make_full_kv_cache(const model::KvShape& shape, int capacity,
                                                     model::KvStorage storage) const override;
  bool uses_host_activations() const override { return false; }
  void forward(const int32_t* tokens, int n, int pos, model::KvCache& kv, model::Activations* host, bool all_logits,
               float* logits) override;

  const model::Hparams& hparams() const { return h_; }
  model::KvShape kv_shape() const;
  size_t weight_bytes() const { return weight_bytes_; }

 private:
  struct Layer {
    DeviceBuffer<float> attn_norm, ffn_norm;
    DeviceWeight wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  struct Workspace;

  DeviceWeight upload(const cpu::WeightView& w);
  DeviceWeight random_weight(quant::GgmlType type, int64_t rows, int64_t cols, uint64_t seed);
  void check_fits(size_t bytes) const;
  void describe_device();
  void attention(int layer, int n, int pos, model::KvCache& kv);

  model::Hparams h_;
  std::unique_ptr<model::Rope> own_rope_;  // the random-weight model's (a loaded model has its own)
  const model::Rope* rope_ = nullptr;
  cpu::ThreadPool& pool_;
  RopeParams rope_params_;
  std::vector<DeviceBuffer<uint8_t>> weight_store_;
  size_t weight_bytes_ = 0;
  DeviceWeight token_embd_, output_;
  DeviceBuffer<float> output_norm_, rope_freqs_;
  std::vector<Layer> layers_;
  std::unique_ptr<Workspace> ws_;
  Stream stream_;
  std::string description_;
};

}  // namespace hcattn::cuda
