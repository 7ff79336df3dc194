// Finding and checking the llama tensors (FORMATS.md §1.6) and sizing the activation buffers.
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "gguf/gguf.h"
#include "model/llama.h"
#include "quant/types.h"

namespace hcattn::model {

namespace {

std::string shape_text(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

void check_type(const gguf::TensorInfo& t) {
  if (!quant::type_supported(t.type)) {
    throw Error(std::string("tensor '") + t.name + "' has type " + quant::type_name(t.type) +
                ", which this engine cannot compute with (supported: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K)");
  }
}

// A 2-D weight stored with ne = [cols, rows].
cpu::WeightView matrix(const gguf::File& f, const std::string& name, int64_t cols, int64_t rows) {
  const gguf::TensorInfo& t = f.tensor(name);
  if (t.ne[0] != cols || t.rows() != rows || t.ne[2] != 1 || t.ne[3] != 1) {
    throw Error("tensor '" + name + "' has shape " + shape_text(t.ne[0], t.rows()) + ", expected " +
                shape_text(cols, rows) + " from the model's hyperparameters");
  }
  check_type(t);
  cpu::WeightView w;
  w.type = t.type;
  w.data = t.data;
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = t.row_bytes();
  return w;
}

// A 1-D tensor (norm weights, rope factors) widened to F32.
std::vector<float> vector_f32(const gguf::TensorInfo& t, int64_t n) {
  if (t.ne[0] != n || t.rows() != 1) {
    throw Error("tensor '" + t.name + "' has " + std::to_string(t.ne[0] * t.rows()) + " values, expected " +
                std::to_string(n));
  }
  check_type(t);
  std::vector<float> out(static_cast<size_t>(n));
  quant::dequantize_row(t.type, t.data, out.data(), n);
  return out;
}

}  // namespace

Llama::Llama(const gguf::File& f, bool weights_on_huge_pages) : h_(read_hparams(f)) {
  const int64_t embd = h_.n_embd, q = h_.n_embd_q(), kv = h_.n_embd_kv(), ff = h_.n_ff, vocab = h_.n_vocab;
  w_.token_embd = matrix(f, "token_embd.weight", embd, vocab);
  w_.output_norm = vector_f32(f.tensor("output_norm.weight"), embd);
  if (f.find_tensor("output.weight")) {
    w_.output = matrix(f, "output.weight", embd, vocab);
  } else {
    w_.output = w_.token_embd;
    w_.tied_output = true;
  }
  if (const gguf::TensorInfo* freqs = f.find_tensor("rope_freqs.weight")) {
    w_.rope_freqs = vector_f32(*freqs, h_.n_rot / 2);
  }
  w_.layers.resize(h_.n_layer);
  for (int l = 0; l < h_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& L = w_.layers[l];
    L.attn_norm = vector_f32(f.tensor(b + "attn_norm.weight"), embd);
    L.wq = matrix(f, b + "attn_q.weight", embd, q);
    L.wk = matrix(f, b + "attn_k.weight", embd, kv);
    L.wv = matrix(f, b + "attn_v.weight", embd, kv);
    L.wo = matrix(f, b + "attn_output.weight", q, embd);
    L.ffn_norm = vector_f32(f.tensor(b + "ffn_norm.weight"), embd);
    L.w_gate = matrix(f, b + "ffn_gate.weight", embd, ff);
    L.w_up = matrix(f, b + "ffn_up.weight", embd, ff);
    L.w_down = matrix(f, b + "ffn_down.weight", ff, embd);
  }
  rope_ = std::make_unique<Rope>(h_, w_.rope_freqs);
  if (weights_on_huge_pages) move_weights_to_arena();
}

void Llama::move_weights_to_arena() {
  // Every matrix a decode step reads; the token embedding is only looked up row by row and stays in
  // the mapping unless it doubles as the output matrix.
  std::vector<cpu::WeightView*> views = {&w_.output};
  for (LayerWeights& L : w_.layers) {
    for (cpu::WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) views.push_back(v);
  }
  size_t bytes = 0;
  for (const cpu::WeightView* v : views) bytes += cpu::WeightArena::bytes_for(*v);
  arena_ = std::make_unique<cpu::WeightArena>(bytes);
  if (!arena_->ok()) {
    arena_.reset();
    return;
  }
  arena_->adopt_all(views, static_cast<int>(std::thread::hardware_concurrency()));
  if (w_.tied_output) w_.token_embd = w_.output;
}

KvShape Llama::kv_shape() const {
  KvShape s;
  s.n_layer = h_.n_layer;
  s.n_head = h_.n_head;
  s.n_head_kv = h_.n_head_kv;
  s.head_dim = h_.head_dim;
  s.kq_scale = h_.kq_scale;
  s.rope = rope_.get();
  return s;
}

Activations::Activations(const Hparams& h, int n)
    : n_batch(n),
      x(static_cast<size_t>(n) * h.n_embd),
      xn(static_cast<size_t>(n) * h.n_embd),
      q(static_cast<size_t>(n) * h.n_embd_q()),
      k(static_cast<size_t>(n) * h.n_embd_kv()),
      v(static_cast<size_t>(n) * h.n_embd_kv()),
      att(static_cast<size_t>(n) * h.n_embd_q()),
      proj(static_cast<size_t>(n) * h.n_embd),
      gate(static_cast<size_t>(n) * h.n_ff),
      up(static_cast<size_t>(n) * h.n_ff),
      rope_cs(static_cast<size_t>(n) * h.n_rot) {}

}  // namespace hcattn::model
