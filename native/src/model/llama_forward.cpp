// The llama forward pass, top to bottom. Shapes: n = tokens in this chunk, d = n_embd,
// hq = n_head * head_dim, hkv = n_head_kv * head_dim, f = n_ff, V = n_vocab.
#include <cmath>
#include <string>

#include "common/error.h"
#include "model/llama.h"
#include "quant/types.h"

namespace hcattn::model {

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* y) {
  for (int t = 0; t < n; ++t) {
    const float* xr = x + static_cast<size_t>(t) * dim;
    float* yr = y + static_cast<size_t>(t) * dim;
    double sum = 0.0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float mean = static_cast<float>(sum / dim);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int i = 0; i < dim; ++i) yr[i] = (xr[i] * scale) * w[i];
  }
}

void Llama::embed(const int32_t* tokens, int n, float* x) const {
  // x: (n, d) ← rows of token_embd
  for (int t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= h_.n_vocab) {
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(h_.n_vocab - 1) + ")");
    }
    const auto* row = static_cast<const uint8_t*>(w_.token_embd.data) + static_cast<size_t>(id) * w_.token_embd.row_bytes;
    quant::dequantize_row(w_.token_embd.type, row, x + static_cast<size_t>(t) * h_.n_embd, h_.n_embd);
  }
}

void Llama::attention_block(int layer, int n, int pos, KvCache& kv, Activations& a, cpu::ThreadPool& pool) const {
  const LayerWeights& L = w_.layers[layer];
  const int d = h_.n_embd;
  rms_norm(a.x.data(), L.attn_norm.data(), n, d, h_.rms_eps, a.xn.data());  // xn: (n, d)
  const cpu::MatmulOut qkv[] = {{&L.wq, a.q.data()},   // q: (n, hq)
                                 {&L.wk, a.k.data()},   // k: (n, hkv)
                                 {&L.wv, a.v.data()}};  // v: (n, hkv)
  cpu::matmul_group(qkv, 3, a.xn.data(), n, pool);
  for (int t = 0; t < n; ++t) {
    const float* cs = a.rope_cs.data() + static_cast<size_t>(t) * h_.n_rot;
    rope_->rotate(a.q.data() + static_cast<size_t>(t) * h_.n_embd_q(), h_.n_head, cs);
    rope_->rotate(a.k.data() + static_cast<size_t>(t) * h_.n_embd_kv(), h_.n_head_kv, cs);
  }
  kv.store_parallel(layer, pos, n, a.k.data(), a.v.data(), pool);
  kv.attend(layer, pos, n, a.q.data(), a.att.data(), pool);                   // att: (n, hq)
  cpu::matmul(L.wo, a.att.data(), n, a.proj.data(), pool);                    // proj: (n, d)
  const size_t nd = static_cast<size_t>(n) * d;
  for (size_t i = 0; i < nd; ++i) a.x[i] += a.proj[i];
}

void Llama::ffn_block(int layer, int n, Activations& a, cpu::ThreadPool& pool) const {
  const LayerWeights& L = w_.layers[layer];
  const int d = h_.n_embd;
  rms_norm(a.x.data(), L.ffn_norm.data(), n, d, h_.rms_eps, a.xn.data());  // xn: (n, d)
  cpu::matmul_swiglu(L.w_gate, L.w_up, a.xn.data(), n, a.gate.data(), a.up.data(), pool);  // gate: (n, f) silu(gate)·up
  cpu::matmul(L.w_down, a.gate.data(), n, a.proj.data(), pool);            // proj: (n, d)
  const size_t nd = static_cast<size_t>(n) * d;
  for (size_t i = 0; i < nd; ++i) a.x[i] += a.proj[i];
}

void Llama::output_logits(int n, bool all_logits, Activations& a, cpu::ThreadPool& pool, float* logits) const {
  const int d = h_.n_embd;
  const int first = all_logits ? 0 : n - 1;  // only the rows whose logits are wanted
  const int rows = n - first;
  rms_norm(a.x.data() + static_cast<size_t>(first) * d, w_.output_norm.data(), rows, d, h_.rms_eps, a.xn.data());
  cpu::matmul(w_.output, a.xn.data(), rows, logits, pool);  // logits: (rows, V)
}

void Llama::forward(const int32_t* tokens, int n, int pos, KvCache& kv, Activations& a, cpu::ThreadPool& pool,
                    bool all_logits, float* logits) const {
  if (n <= 0 || n > a.n_batch) throw Error("forward: chunk of " + std::to_string(n) + " tokens does not fit the batch");
  embed(tokens, n, a.x.data());
  for (int t = 0; t < n; ++t) rope_->angles(pos + t, a.rope_cs.data() + static_cast<size_t>(t) * h_.n_rot);
  for (int l = 0; l < h_.n_layer; ++l) {
    attention_block(l, n, pos, kv, a, pool);
    ffn_block(l, n, a, pool);
  }
  output_logits(n, all_logits, a, pool, logits);
}

}  // namespace hcattn::model
