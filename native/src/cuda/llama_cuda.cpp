#include "cuda/llama_cuda.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "common/error.h"
#include "cuda/device.h"
#include "cuda/kv_cache_cuda.h"
#include "cuda/op_checks.h"
#include "cuda/ops.h"
#include "quant/types.h"

namespace hcattn::cuda {

// Activation buffers on the device for chunks of up to n_batch tokens (grown on demand; one forward
// pass runs at a time, so contexts share them), and pinned host staging for host-side KV caches
// (allocated only when such a cache is used).
struct CudaLlama::Workspace {
  int n_batch = 0, n_host = 0;
  DeviceBuffer<float> x, xn, q, k, v, att, proj, gate, up, logits;
  DeviceBuffer<int32_t> ids, positions;
  PinnedBuffer<float> host_q, host_k, host_v, host_att;

  void reserve(const model::Hparams& h, int n) {
    if (n <= n_batch) return;
    const size_t t = static_cast<size_t>(n);
    x.resize(t * h.n_embd);
    xn.resize(t * h.n_embd);
    q.resize(t * h.n_embd_q());
    k.resize(t * h.n_embd_kv());
    v.resize(t * h.n_embd_kv());
    att.resize(t * h.n_embd_q());
    proj.resize(t * h.n_embd);
    gate.resize(t * h.n_ff);
    up.resize(t * h.n_ff);
    ids.resize(t);
    positions.resize(t);
    n_batch = n;
  }
  void reserve_host(const model::Hparams& h, int n) {
    if (n <= n_host) return;
    const size_t t = static_cast<size_t>(n);
    host_q = PinnedBuffer<float>(t * h.n_embd_q());
    host_k = PinnedBuffer<float>(t * h.n_embd_kv());
    host_v = PinnedBuffer<float>(t * h.n_embd_kv());
    host_att = PinnedBuffer<float>(t * h.n_embd_q());
    n_host = n;
  }
};

namespace {

double gib(size_t bytes) { return static_cast<double>(bytes) / (1u << 30); }

std::vector<float> ones(int n) { return std::vector<float>(static_cast<size_t>(n), 1.0f); }

}  // namespace

CudaLlama::CudaLlama(const model::Llama& llama, cpu::ThreadPool& pool)
    : h_(llama.hparams()), rope_(llama.kv_shape().rope), pool_(pool), ws_(std::make_unique<Workspace>()) {
  const model::Weights& w = llama.weights();
  // Check every type before allocating anything, so an unsupported model fails fast and clean.
  std::vector<const cpu::WeightView*> all = {&w.token_embd, &w.output};
  for (const model::LayerWeights& L : w.layers)
    for (const cpu::WeightView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) all.push_back(m);
  size_t total = 0;
  for (const cpu::WeightView* m : all) {
    const bool k_quant = m->type == quant::GgmlType::Q4_K || m->type == quant::GgmlType::Q6_K;
    if (!matmul_supports(m->type) || m->cols % (k_quant ? quant::QK_K : quant::QK) != 0) {
      throw Error(std::string("the CUDA backend cannot compute with a ") + quant::type_name(m->type) + " weight of " +
                  std::to_string(m->cols) + " columns (supported: Q4_0 Q8_0 Q4_K Q6_K F16 BF16 F32, whole blocks)");
    }
    total += m->row_bytes * static_cast<size_t>(m->rows);
  }
  if (w.tied_output) total -= w.output.row_bytes * static_cast<size_t>(w.output.rows);
  check_fits(total);
  describe_device();

  token_embd_ = upload(w.token_embd);
  output_ = w.tied_output ? token_embd_ : upload(w.output);
  output_norm_.upload(w.output_norm.data(), w.output_norm.size(), stream_.get());
  if (!w.rope_freqs.empty()) rope_freqs_.upload(w.rope_freqs.data(), w.rope_freqs.size(), stream_.get());
  layers_.resize(h_.n_layer);
  for (int l = 0; l < h_.n_layer; ++l) {
    const model::LayerWeights& L = w.layers[l];
    Layer& D = layers_[l];
    D.attn_norm.upload(L.attn_norm.data(), L.attn_norm.size(), stream_.get());
    D.ffn_norm.upload(L.ffn_norm.data(), L.ffn_norm.size(), stream_.get());
    D.wq = upload(L.wq);
    D.wk = upload(L.wk);
    D.wv = upload(L.wv);
    D.wo = upload(L.wo);
    D.w_gate = upload(L.w_gate);
    D.w_up = upload(L.w_up);
    D.w_down = upload(L.w_down);
  }
  rope_params_ = rope_params(h_);
  stream_.sync();
}

CudaLlama::CudaLlama(const model::Hparams& h, quant::GgmlType type, uint64_t seed, cpu::ThreadPool& pool)
    : h_(h), own_rope_(std::make_unique<model::Rope>(h, std::vector<float>{})), rope_(own_rope_.get()), pool_(pool),
      ws_(std::make_unique<Workspace>()) {
  const size_t per_layer = quant::row_size(type, h.n_embd) * (static_cast<size_t>(h.n_embd_q()) + 2 * h.n_embd_kv() + 2 * h.n_ff) +
                           quant::row_size(type, h.n_embd_q()) * h.n_embd + quant::row_size(type, h.n_ff) * h.n_embd;
  check_fits(per_layer * h.n_layer + 2 * quant::row_size(type, h.n_embd) * static_cast<size_t>(h.n_vocab));
  describe_device();
  token_embd_ = random_weight(type, h.n_vocab, h.n_embd, seed++);
  output_ = random_weight(type, h.n_vocab, h.n_embd, seed++);
  const std::vector<float> one = ones(h.n_embd);
  output_norm_.upload(one.data(), one.size(), stream_.get());
  layers_.resize(h.n_layer);
  for (Layer& D : layers_) {
    D.attn_norm.upload(one.data(), one.size(), stream_.get());
    D.ffn_norm.upload(one.data(), one.size(), stream_.get());
    D.wq = random_weight(type, h.n_embd_q(), h.n_embd, seed++);
    D.wk = random_weight(type, h.n_embd_kv(), h.n_embd, seed++);
    D.wv = random_weight(type, h.n_embd_kv(), h.n_embd, seed++);
    D.wo = random_weight(type, h.n_embd, h.n_embd_q(), seed++);
    D.w_gate = random_weight(type, h.n_ff, h.n_embd, seed++);
    D.w_up = random_weight(type, h.n_ff, h.n_embd, seed++);
    D.w_down = random_weight(type, h.n_embd, h.n_ff, seed++);
  }
  rope_params_ = rope_params(h_);
  stream_.sync();
}

CudaLlama::~CudaLlama() = default;

void CudaLlama::check_fits(size_t bytes) const {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  // Room for the activations and a context's first caches beside the weights.
  const size_t reserve = size_t{1} << 30;
  if (bytes + reserve > free_b) {
    char msg[256];
    std::snprintf(msg, sizeof msg, "the model's weights need %.2f GiB of GPU memory (+1 GiB of work space), %.2f GiB are free",
                  gib(bytes), gib(free_b));
    throw Error(msg);
  }
}

void CudaLlama::describe_device() {
  const DeviceProbe probe = probe_devices();
  char text[256];
  std::snprintf(text, sizeof text, "%s (sm_%d, %.1f GiB)", probe.name.c_str(), probe.compute_capability,
                gib(probe.total_memory));
  description_ = text;
}

DeviceWeight CudaLlama::upload(const cpu::WeightView& w) {
  const size_t bytes = w.row_bytes * static_cast<size_t>(w.rows);
  weight_store_.emplace_back(bytes);
  CUDA_CHECK(cudaMemcpyAsync(weight_store_.back().get(), w.data, bytes, cudaMemcpyHostToDevice, stream_.get()));
  weight_bytes_ += bytes;
  return DeviceWeight{w.type, weight_store_.back().get(), w.rows, w.cols, w.row_bytes};
}

DeviceWeight CudaLlama::random_weight(quant::GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  const size_t row_bytes = quant::row_size(type, cols);
  weight_store_.emplace_back(row_bytes * rows);
  DeviceWeight w{type, weight_store_.back().get(), rows, cols, row_bytes};
  fill_random_weight(w, seed, stream_.get());
  weight_bytes_ += row_bytes * rows;
  return w;
}

model::KvShape CudaLlama::kv_shape() const {
  model::KvShape s;
  s.n_layer = h_.n_layer;
  s.n_head = h_.n_head;
  s.n_head_kv = h_.n_head_kv;
  s.head_dim = h_.head_dim;
  s.kq_scale = h_.kq_scale;
  s.rope = rope_;
  return s;
}

std::unique_ptr<model::KvCache> CudaLlama::make_full_kv_cache(const model::KvShape& shape, int capacity,
                                                              model::KvStorage storage) const {
  return std::make_unique<DeviceKvCache>(shape, capacity, storage);
}

void CudaLlama::attention(int layer, int n, int pos, model::KvCache& kv) {
  Workspace& w = *ws_;
  const cudaStream_t s = stream_.get();
  if (auto* device_kv = dynamic_cast<DeviceKvCache*>(&kv)) {
    device_kv->store_device(layer, pos, n, w.k.get(), w.v.get(), s);
    device_kv->attend_device(layer, pos, n, w.q.get(), w.att.get(), s);
    return;
  }
  // A host cache: q, k, v down, store and attend on CPU threads, the attention output back up.
  w.reserve_host(h_, n);
  const size_t nq = static_cast<size_t>(n) * h_.n_embd_q(), nkv = static_cast<size_t>(n) * h_.n_embd_kv();
  CUDA_CHECK(cudaMemcpyAsync(w.host_q.get(), w.q.get(), nq * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(w.host_k.get(), w.k.get(), nkv * sizeof(float), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(w.host_v.get(), w.v.get(), nkv * sizeof(float), cudaMemcpyDeviceToHost, s));
  stream_.sync();
  kv.store_parallel(layer, pos, n, w.host_k.get(), w.host_v.get(), pool_);
  kv.attend(layer, pos, n, w.host_q.get(), w.host_att.get(), pool_);
  CUDA_CHECK(cudaMemcpyAsync(w.att.get(), w.host_att.get(), nq * sizeof(float), cudaMemcpyHostToDevice, s));
}

void CudaLlama::forward(const int32_t* tokens, int n, int pos, model::KvCache& kv, model::Activations*, bool all_logits,
                        float* logits) {
  if (n <= 0) throw Error("forward: a chunk needs at least one token");
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= h_.n_vocab) {
      throw Error("token id " + std::to_string(tokens[t]) + " is outside the vocabulary (0.." +
                  std::to_string(h_.n_vocab - 1) + ")");
    }
  }
  Workspace& w = *ws_;
  w.reserve(h_, n);
  const cudaStream_t s = stream_.get();
  const int d = h_.n_embd;
  const size_t nd = static_cast<size_t>(n) * d;

  std::vector<int32_t> positions(n);
  for (int t = 0; t < n; ++t) positions[t] = pos + t;
  CUDA_CHECK(cudaMemcpyAsync(w.ids.get(), tokens, n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaMemcpyAsync(w.positions.get(), positions.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
  embed_rows(token_embd_, w.ids.get(), n, w.x.get(), s);  // x: (n, d)
  const float* freqs = rope_freqs_.size() ? rope_freqs_.get() : nullptr;

  for (int l = 0; l < h_.n_layer; ++l) {
    const Layer& L = layers_[l];
    rms_norm(w.x.get(), L.attn_norm.get(), n, d, h_.rms_eps, w.xn.get(), s);
    matmul(L.wq, w.xn.get(), n, w.q.get(), s);  // q: (n, hq)
    matmul(L.wk, w.xn.get(), n, w.k.get(), s);  // k: (n, hkv)
    matmul(L.wv, w.xn.get(), n, w.v.get(), s);  // v: (n, hkv)
    rope_apply(w.q.get(), w.positions.get(), n, h_.n_head, rope_params_, freqs, s);
    rope_apply(w.k.get(), w.positions.get(), n, h_.n_head_kv, rope_params_, freqs, s);
    attention(l, n, pos, kv);                         // att: (n, hq)
    matmul(L.wo, w.att.get(), n, w.proj.get(), s);    // proj: (n, d)
    add_residual(w.x.get(), w.proj.get(), static_cast<int64_t>(nd), s);

    rms_norm(w.x.get(), L.ffn_norm.get(), n, d, h_.rms_eps, w.xn.get(), s);
    matmul(L.w_gate, w.xn.get(), n, w.gate.get(), s);  // gate: (n, f)
    matmul(L.w_up, w.xn.get(), n, w.up.get(), s);      // up: (n, f)
    swiglu(w.gate.get(), w.up.get(), static_cast<int64_t>(n) * h_.n_ff, s);
    matmul(L.w_down, w.gate.get(), n, w.proj.get(), s);  // proj: (n, d)
    add_residual(w.x.get(), w.proj.get(), static_cast<int64_t>(nd), s);
  }

  const int first = all_logits ? 0 : n - 1;  // only the rows whose logits are wanted
  const int rows = n - first;
  rms_norm(w.x.get() + static_cast<size_t>(first) * d, output_norm_.get(), rows, d, h_.rms_eps, w.xn.get(), s);
  const size_t n_logits = static_cast<size_t>(rows) * h_.n_vocab;
  w.logits.resize(n_logits);
  matmul(output_, w.xn.get(), rows, w.logits.get(), s);  // logits: (rows, V)
  w.logits.download(logits, n_logits, s);
}

}  // namespace hcattn::cuda

namespace hcattn::engine {

std::string cuda_unavailable_reason() {
  std::string reason;
  return cuda::device_usable(&reason) ? std::string() : reason;
}

std::unique_ptr<Backend> make_cuda_backend(const model::Llama& llama, cpu::ThreadPool& pool) {
  const std::string reason = cuda_unavailable_reason();
  if (!reason.empty()) throw Error(reason);
  return std::make_unique<cuda::CudaLlama>(llama, pool);
}

}  // namespace hcattn::engine
