// The plain full-attention KV cache (the reference path).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/error.h"
#include "model/kv_cache.h"
#include "quant/types.h"

namespace hcattn::model {

namespace {

inline float load(float v) { return v; }
inline float load(uint16_t v) { return quant::fp16_to_fp32(v); }
inline void save(float* dst, float v) { *dst = v; }
inline void save(uint16_t* dst, float v) { *dst = quant::fp32_to_fp16(v); }
// What a value becomes when llama.cpp converts it to the cache's dot type (identity for F32).
template <typename T>
inline float round_as(float v) {
  if constexpr (std::is_same_v<T, uint16_t>) {
    return quant::fp16_to_fp32(quant::fp32_to_fp16(v));
  } else {
    return v;
  }
}

template <typename T>
class FullKvCache final : public KvCache {
 public:
  FullKvCache(const KvShape& shape, int capacity)
      : shape_(shape),
        capacity_(capacity),
        row_(static_cast<size_t>(shape.n_head_kv) * shape.head_dim),
        keys_(new T[static_cast<size_t>(shape.n_layer) * capacity * row_]),
        values_(new T[static_cast<size_t>(shape.n_layer) * capacity * row_]) {}

  int capacity() const override { return capacity_; }

  void store(int layer, int pos, int n_tokens, const float* k, const float* v) override {
    if (pos < 0 || pos + n_tokens > capacity_) {
      throw Error("context is full: positions up to " + std::to_string(pos + n_tokens) + " do not fit in " +
                  std::to_string(capacity_) + "; create the context with a larger nCtx");
    }
    T* kd = key_row(layer, pos);
    T* vd = value_row(layer, pos);
    const size_t n = static_cast<size_t>(n_tokens) * row_;
    for (size_t i = 0; i < n; ++i) {
      save(kd + i, k[i]);
      save(vd + i, v[i]);
    }
  }

  void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) override {
    const int hd = shape_.head_dim;
    const int group = shape_.n_head / shape_.n_head_kv;
    const int n_q = shape_.n_head * hd;
    if (static_cast<int>(scratch_.size()) < pool.size()) scratch_.resize(pool.size());
    // One task per (token, head): scores over positions [0, pos + t], softmax, weighted sum of values.
    pool.parallel_for(static_cast<int64_t>(n_tokens) * shape_.n_head, 1, [&](int64_t begin, int64_t end, int thread) {
      std::vector<float>& scores = scratch_[thread];
      scores.resize(capacity_ + static_cast<size_t>(hd));
      float* qh = scores.data() + capacity_;
      for (int64_t task = begin; task < end; ++task) {
        const int t = static_cast<int>(task / shape_.n_head);
        const int h = static_cast<int>(task % shape_.n_head);
        const int kvh = h / group;
        const int n_keys = pos + t + 1;
        for (int i = 0; i < hd; ++i) qh[i] = round_as<T>(q[static_cast<size_t>(t) * n_q + static_cast<size_t>(h) * hd + i]);
        attend_one(layer, kvh, n_keys, qh, scores.data(), out + static_cast<size_t>(t) * n_q + static_cast<size_t>(h) * hd);
      }
    });
  }

  std::unique_ptr<KvCache> clone_prefix(int n) const override {
    auto copy = std::make_unique<FullKvCache<T>>(shape_, capacity_);
    const size_t bytes = static_cast<size_t>(n) * row_ * sizeof(T);
    for (int l = 0; l < shape_.n_layer; ++l) {
      std::memcpy(copy->key_row(l, 0), key_row(l, 0), bytes);
      std::memcpy(copy->value_row(l, 0), value_row(l, 0), bytes);
    }
    return copy;
  }

 private:
  // scores: n_keys floats of scratch; q: the (already rounded) query of one head.
  void attend_one(int layer, int kvh, int n_keys, const float* q, float* scores, float* out) const {
    const int hd = shape_.head_dim;
    const size_t head_off = static_cast<size_t>(kvh) * hd;
    float max_w = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < n_keys; ++j) {
      const T* k = key_row(layer, j) + head_off;
      float s = 0.0f;
      for (int i = 0; i < hd; ++i) s += q[i] * load(k[i]);
      scores[j] = s * shape_.kq_scale;
      max_w = std::max(max_w, scores[j]);
    }
    // Softmax as ggml's soft_max: exp in float, the sum accumulated in double, one float reciprocal.
    double sum = 0.0;
    for (int j = 0; j < n_keys; ++j) {
      scores[j] = std::exp(scores[j] - max_w);
      sum += scores[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int i = 0; i < hd; ++i) out[i] = 0.0f;
    for (int j = 0; j < n_keys; ++j) {
      const float p = round_as<T>(scores[j] * inv);
      const T* v = value_row(layer, j) + head_off;
      for (int i = 0; i < hd; ++i) out[i] += p * load(v[i]);
    }
  }

  T* key_row(int layer, int pos) { return keys_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_; }
  const T* key_row(int layer, int pos) const {
    return keys_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_;
  }
  T* value_row(int layer, int pos) { return values_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_; }
  const T* value_row(int layer, int pos) const {
    return values_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_;
  }

  KvShape shape_;
  int capacity_;
  size_t row_;                  // n_head_kv * head_dim
  // Left uninitialized so that memory is only touched (and counted) as positions fill.
  std::unique_ptr<T[]> keys_;    // (n_layer, capacity, n_head_kv * head_dim), post-RoPE
  std::unique_ptr<T[]> values_;  // (n_layer, capacity, n_head_kv * head_dim)
  std::vector<std::vector<float>> scratch_;  // per pool thread: scores (capacity) + query (head_dim)
};

}  // namespace

std::unique_ptr<KvCache> make_full_kv_cache(const KvShape& shape, int capacity, KvStorage storage) {
  if (storage == KvStorage::F16) return std::make_unique<FullKvCache<uint16_t>>(shape, capacity);
  return std::make_unique<FullKvCache<float>>(shape, capacity);
}

}  // namespace hcattn::model
