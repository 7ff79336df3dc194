// Llama hyperparameters as llama.cpp reads them from GGUF metadata (FORMATS.md §1.8, §5.4).
#pragma once
#include <cstdint>
#include <string>

namespace hcattn::gguf {
class File;
}

namespace hcattn::model {

enum class RopeScaling { None, Linear, Yarn };

struct Hparams {
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;       // attention.key_length, default n_embd / n_head
  int n_ff = 0;
  float rms_eps = 1e-5f;
  float kq_scale = 0;     // attention.scale, default 1/sqrt(head_dim)

  // RoPE (type NORM: adjacent pairs).
  int n_rot = 0;                 // rope.dimension_count (= head_dim for llama)
  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::Linear;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor
  int rope_n_ctx_orig = 0;       // rope.scaling.original_context_length, default n_ctx_train
  float yarn_ext_factor = 0.0f;  // 0 unless YaRN (then 1 unless the file says otherwise)
  float yarn_attn_factor = 1.0f;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;

  int n_embd_q() const { return n_head * head_dim; }
  int n_embd_kv() const { return n_head_kv * head_dim; }
};

// Reads and checks the hyperparameters; throws hcattn::Error naming the key that is missing or wrong.
// n_vocab comes from the tokenizer's token list (as llama.cpp does), else llama.vocab_size.
Hparams read_hparams(const gguf::File& file);

}  // namespace hcattn::model
