// The llama forward pass as llama.cpp runs it (FORMATS.md §5), one function per stage:
//   embed → per layer [RMSNorm → Q,K,V → RoPE → attention (KvCache) → Wo → residual →
//   RMSNorm → SwiGLU FFN → residual] → RMSNorm → output logits.
// Every weight product goes through cpu::matmul (or its grouped forms for Q/K/V and gate/up), which
// quantizes the activations as llama.cpp does.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/matmul.h"
#include "cpu/threadpool.h"
#include "cpu/weight_arena.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/rope.h"

namespace hcattn::gguf {
class File;
struct TensorInfo;
}  // namespace hcattn::gguf

namespace hcattn::model {

struct LayerWeights {
  std::vector<float> attn_norm;  // (n_embd)
  cpu::WeightView wq;            // (n_head * head_dim rows, n_embd cols)
  cpu::WeightView wk;            // (n_head_kv * head_dim, n_embd)
  cpu::WeightView wv;            // (n_head_kv * head_dim, n_embd)
  cpu::WeightView wo;            // (n_embd, n_head * head_dim)
  std::vector<float> ffn_norm;   // (n_embd)
  cpu::WeightView w_gate;        // (n_ff, n_embd)
  cpu::WeightView w_up;          // (n_ff, n_embd)
  cpu::WeightView w_down;        // (n_embd, n_ff)
};

struct Weights {
  cpu::WeightView token_embd;     // (n_vocab, n_embd): rows are looked up, not multiplied
  std::vector<float> output_norm; // (n_embd)
  cpu::WeightView output;         // (n_vocab, n_embd): token_embd when the file has no output.weight
  bool tied_output = false;
  std::vector<float> rope_freqs;  // (head_dim / 2) angle divisors, or empty
  std::vector<LayerWeights> layers;
};

// Activation buffers for one chunk of up to n_batch tokens.
struct Activations {
  int n_batch = 0;
  std::vector<float> x;       // (n_batch, n_embd) the residual stream
  std::vector<float> xn;      // (n_batch, n_embd) normalized input of a block
  std::vector<float> q;       // (n_batch, n_head * head_dim)
  std::vector<float> k;       // (n_batch, n_head_kv * head_dim)
  std::vector<float> v;       // (n_batch, n_head_kv * head_dim)
  std::vector<float> att;     // (n_batch, n_head * head_dim) attention output, heads concatenated
  std::vector<float> proj;    // (n_batch, n_embd) output of Wo or Wdown
  std::vector<float> gate;    // (n_batch, n_ff)
  std::vector<float> up;      // (n_batch, n_ff)
  std::vector<float> rope_cs; // (n_batch, n_rot) cos/sin per position
  Activations(const Hparams& h, int n_batch);
};

class Llama {
 public:
  // Reads hyperparameters and checks every tensor's presence, shape and type. Throws hcattn::Error.
  // With weights_on_huge_pages the matrices are copied out of the file mapping into a WeightArena,
  // which decode reads faster (cpu/weight_arena.h); a backend that uploads the weights elsewhere can
  // skip the copy.
  explicit Llama(const gguf::File& file, bool weights_on_huge_pages = true);

  const Hparams& hparams() const { return h_; }
  const Weights& weights() const { return w_; }
  KvShape kv_shape() const;

  // Evaluates n tokens (n <= a.n_batch) at positions [pos, pos + n), storing their keys and values in
  // kv. Writes logits for every token, (n, n_vocab), when all_logits, else for the last one (n_vocab).
  void forward(const int32_t* tokens, int n, int pos, KvCache& kv, Activations& a, cpu::ThreadPool& pool,
               bool all_logits, float* logits) const;

 private:
  void embed(const int32_t* tokens, int n, float* x) const;
  void attention_block(int layer, int n, int pos, KvCache& kv, Activations& a, cpu::ThreadPool& pool) const;
  void ffn_block(int layer, int n, Activations& a, cpu::ThreadPool& pool) const;
  void output_logits(int n, bool all_logits, Activations& a, cpu::ThreadPool& pool, float* logits) const;

  // Copies the weight matrices into arena_ and points the views at the copies.
  void move_weights_to_arena();

  Hparams h_;
  Weights w_;
  std::unique_ptr<cpu::WeightArena> arena_;  // null when the weights stay in the file mapping
  std::unique_ptr<Rope> rope_;
};

// y = x / sqrt(mean(x²) + eps) · w for each of n rows of dim values (sum of squares in double, as ggml).
void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* y);
// gate[i] = silu(gate[i]) · up[i] (defined with the matmuls, which apply it to the FFN's chunks)
using cpu::swiglu;

}  // namespace hcattn::model
