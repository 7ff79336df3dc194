#include "model/hparams.h"

#include <cmath>

#include "common/error.h"
#include "gguf/gguf.h"

namespace hcattn::model {

namespace {

// llama.cpp allows per-layer arrays for head counts; the engine supports the uniform case only.
int read_head_count(const gguf::File& f, const std::string& key, int fallback) {
  const gguf::Value* v = f.find(key);
  if (!v) return fallback;
  if (v->type == gguf::ValueType::ARRAY) {
    if (v->ints.empty()) throw Error("metadata '" + key + "' is an empty array");
    for (int64_t n : v->ints) {
      if (n != v->ints[0]) throw Error("metadata '" + key + "' varies per layer; this engine needs one value");
    }
    return static_cast<int>(v->ints[0]);
  }
  return static_cast<int>(f.get_uint(key));
}

int positive(const std::string& key, uint64_t value, uint64_t limit) {
  if (value == 0 || value > limit) {
    throw Error("metadata '" + key + "' = " + std::to_string(value) + " is out of range (1.." +
                std::to_string(limit) + ")");
  }
  return static_cast<int>(value);
}

}  // namespace

Hparams read_hparams(const gguf::File& f) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama") {
    throw Error("model architecture '" + arch + "' is not supported; this engine runs 'llama' (Llama-3 family) models");
  }
  const std::string p = "llama.";
  Hparams h;
  h.n_ctx_train = positive(p + "context_length", f.get_uint(p + "context_length"), 1u << 26);
  h.n_embd = positive(p + "embedding_length", f.get_uint(p + "embedding_length"), 1u << 16);
  h.n_layer = positive(p + "block_count", f.get_uint(p + "block_count"), 1024);
  h.n_ff = positive(p + "feed_forward_length", f.get_uint(p + "feed_forward_length"), 1u << 18);
  h.n_head = positive(p + "attention.head_count", read_head_count(f, p + "attention.head_count", 0), 1024);
  h.n_head_kv = positive(p + "attention.head_count_kv",
                         read_head_count(f, p + "attention.head_count_kv", h.n_head), 1024);
  if (h.n_head % h.n_head_kv != 0) {
    throw Error("attention.head_count (" + std::to_string(h.n_head) + ") is not a multiple of head_count_kv (" +
                std::to_string(h.n_head_kv) + ")");
  }
  if (h.n_embd % h.n_head != 0 && !f.find(p + "attention.key_length")) {
    throw Error("embedding_length is not a multiple of attention.head_count and attention.key_length is missing");
  }
  h.head_dim = positive(p + "attention.key_length", f.get_uint_or(p + "attention.key_length", h.n_embd / h.n_head), 4096);
  const uint64_t value_length = f.get_uint_or(p + "attention.value_length", h.head_dim);
  if (value_length != static_cast<uint64_t>(h.head_dim)) {
    throw Error("attention.value_length differs from key_length; llama models use one head size");
  }
  if (h.head_dim % 2 != 0) throw Error("attention head size " + std::to_string(h.head_dim) + " is odd; RoPE needs pairs");
  h.rms_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon"));
  h.kq_scale = static_cast<float>(f.get_float_or(p + "attention.scale", 0.0));
  if (h.kq_scale == 0.0f) h.kq_scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim));

  h.n_rot = static_cast<int>(f.get_uint_or(p + "rope.dimension_count", h.head_dim));
  if (h.n_rot != h.head_dim) {
    throw Error("rope.dimension_count (" + std::to_string(h.n_rot) + ") must equal the head size (" +
                std::to_string(h.head_dim) + ") for llama models");
  }
  h.rope_freq_base = static_cast<float>(f.get_float_or(p + "rope.freq_base", 10000.0));

  const std::string scaling = f.get_string_or(p + "rope.scaling.type", "linear");
  if (scaling == "none") {
    h.rope_scaling = RopeScaling::None;
  } else if (scaling == "linear") {
    h.rope_scaling = RopeScaling::Linear;
  } else if (scaling == "yarn") {
    h.rope_scaling = RopeScaling::Yarn;
  } else {
    throw Error("rope.scaling.type '" + scaling + "' is not supported (none, linear, yarn are)");
  }
  // Older converters wrote the linear factor under rope.scale_linear.
  float factor = static_cast<float>(f.get_float_or(p + "rope.scaling.factor", f.get_float_or(p + "rope.scale_linear", 0.0)));
  h.rope_freq_scale = (factor == 0.0f || h.rope_scaling == RopeScaling::None) ? 1.0f : 1.0f / factor;
  h.rope_n_ctx_orig = static_cast<int>(f.get_uint_or(p + "rope.scaling.original_context_length", h.n_ctx_train));

  h.yarn_ext_factor = static_cast<float>(f.get_float_or(p + "rope.scaling.yarn_ext_factor", -1.0));
  if (h.yarn_ext_factor < 0.0f) h.yarn_ext_factor = h.rope_scaling == RopeScaling::Yarn ? 1.0f : 0.0f;
  h.yarn_beta_fast = static_cast<float>(f.get_float_or(p + "rope.scaling.yarn_beta_fast", 32.0));
  h.yarn_beta_slow = static_cast<float>(f.get_float_or(p + "rope.scaling.yarn_beta_slow", 1.0));
  // For plain YaRN llama.cpp's attention factor cancels against its own mscale, leaving the file's
  // attn_factor; the rope kernel then multiplies by 1 + 0.1 ln(1/freq_scale) (rope.cpp).
  h.yarn_attn_factor = static_cast<float>(f.get_float_or(p + "rope.scaling.attn_factor", 1.0));

  if (const gguf::Value* tokens = f.find("tokenizer.ggml.tokens"); tokens && !tokens->strs.empty()) {
    h.n_vocab = static_cast<int>(tokens->strs.size());
  } else {
    h.n_vocab = positive(p + "vocab_size", f.get_uint(p + "vocab_size"), 1u << 24);
  }
  return h;
}

}  // namespace hcattn::model
