// The plain full-attention KV cache (the reference path).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/error.h"
#include "cpu/matmul.h"
#include "model/kv_cache.h"
#include "quant/types.h"

namespace hcattn::model {

namespace {

inline void save(float* dst, float v) { *dst = v; }
inline void save(uint16_t* dst, float v) { *dst = quant::fp32_to_fp16(v); }

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
  // Both tensors are allocated for the whole capacity up front and read by every step.
  KvBytes bytes() const override { return {2 * static_cast<size_t>(shape_.n_layer) * capacity_ * row_ * sizeof(T), 0}; }

  void store(int layer, int pos, int n_tokens, const float* k, const float* v) override {
    if (pos < 0 || pos + n_tokens > capacity_) {
      throw Error("context is full: positions up to " + std::to_string(pos + n_tokens) + " do not fit in " +
                  std::to_string(capacity_) + "; create the context with a larger nCtx");
    }
    T* kd = key_row(layer, pos);
    for (size_t i = 0; i < static_cast<size_t>(n_tokens) * row_; ++i) save(kd + i, k[i]);
    for (int t = 0; t < n_tokens; ++t) {
      for (size_t c = 0; c < row_; ++c) save(value_channel(layer, c) + pos + t, v[t * row_ + c]);
    }
  }

  // Per KV head g, the G = n_head / n_head_kv query heads that share it are multiplied together:
  //   S = K_g · Q_g      (n_keys scores for each of the tq·G query rows; one matmul over the cache rows)
  //   P = softmax(S · kq_scale + causal mask)
  //   O = V_gᵀ · P       (head_dim outputs per query row; V is stored transposed for this)
  // Both products go through cpu::matmul with the cache as the weight, so an F16 cache rounds Q and P
  // to F16 exactly where llama.cpp does. When every thread gets a KV head, the heads run in parallel
  // and each head's products run inline on its thread: one dispatch per layer instead of several per
  // head (in decode the products are a few microseconds each, shorter than a dispatch's wait).
  void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) override {
    const int threads = pool.size();
    const bool by_head = shape_.n_head_kv >= threads;
    scratch_.resize(by_head ? threads : 1);
    // Query tokens per pass, so that the score matrices stay near 8M floats even for long contexts.
    const int64_t budget = (int64_t{8} << 20) / static_cast<int64_t>(scratch_.size());
    const int group = shape_.n_head / shape_.n_head_kv;
    const int tq = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_tokens, budget / (static_cast<int64_t>(group) * (pos + n_tokens)))));
    if (by_head) {
      pool.parallel_for(shape_.n_head_kv, 1, [&](int64_t g0, int64_t g1, int thread) {
        for (int64_t g = g0; g < g1; ++g) attend_head(layer, static_cast<int>(g), pos, n_tokens, tq, q, out, scratch_[thread], pool);
      });
    } else {
      for (int g = 0; g < shape_.n_head_kv; ++g) attend_head(layer, g, pos, n_tokens, tq, q, out, scratch_[0], pool);
    }
  }

  std::unique_ptr<KvCache> clone_prefix(int n) const override {
    auto copy = std::make_unique<FullKvCache<T>>(shape_, capacity_);
    for (int l = 0; l < shape_.n_layer; ++l) {
      std::memcpy(copy->key_row(l, 0), key_row(l, 0), static_cast<size_t>(n) * row_ * sizeof(T));
      for (size_t c = 0; c < row_; ++c) std::memcpy(copy->value_channel(l, c), value_channel(l, c), n * sizeof(T));
    }
    return copy;
  }

 private:
  // Buffers of one attend_head call, one set per thread that runs heads.
  struct Scratch {
    std::vector<float> qg;        // (tq * G, head_dim) queries of one KV head's group
    std::vector<float> scores;    // (tq * G, n_keys) scores, then probabilities
    std::vector<float> head_out;  // (tq * G, head_dim)
  };

  void attend_head(int layer, int g, int pos, int n_tokens, int tq, const float* q, float* out, Scratch& s,
                   cpu::ThreadPool& pool) {
    const int hd = shape_.head_dim;
    const int group = shape_.n_head / shape_.n_head_kv;
    const size_t n_q = static_cast<size_t>(shape_.n_head) * hd;
    for (int t0 = 0; t0 < n_tokens; t0 += tq) {
      const int nt = std::min(tq, n_tokens - t0);
      const int n_keys = pos + t0 + nt;  // the last query of this pass sees every key up to itself
      const int rows = nt * group;
      s.qg.resize(static_cast<size_t>(rows) * hd);
      for (int t = 0; t < nt; ++t) {
        for (int h = 0; h < group; ++h) {
          const float* src = q + (t0 + t) * n_q + static_cast<size_t>(g * group + h) * hd;
          std::copy(src, src + hd, s.qg.data() + static_cast<size_t>(t * group + h) * hd);
        }
      }
      s.scores.resize(static_cast<size_t>(rows) * n_keys);
      cpu::WeightView kv;
      kv.type = storage_type();
      kv.data = key_row(layer, 0) + static_cast<size_t>(g) * hd;
      kv.rows = n_keys;
      kv.cols = hd;
      kv.row_bytes = row_ * sizeof(T);
      cpu::matmul(kv, s.qg.data(), rows, s.scores.data(), pool);
      pool.parallel_for(rows, 1, [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const int visible = pos + t0 + static_cast<int>(r / group) + 1;
          softmax_row(s.scores.data() + r * n_keys, visible, n_keys);
        }
      });
      s.head_out.resize(static_cast<size_t>(rows) * hd);
      cpu::WeightView vt;
      vt.type = storage_type();
      vt.data = value_channel(layer, static_cast<size_t>(g) * hd);
      vt.rows = hd;
      vt.cols = n_keys;
      vt.row_bytes = static_cast<size_t>(capacity_) * sizeof(T);
      cpu::matmul(vt, s.scores.data(), rows, s.head_out.data(), pool);
      for (int t = 0; t < nt; ++t) {
        for (int h = 0; h < group; ++h) {
          const float* src = s.head_out.data() + static_cast<size_t>(t * group + h) * hd;
          std::copy(src, src + hd, out + (t0 + t) * n_q + static_cast<size_t>(g * group + h) * hd);
        }
      }
    }
  }

  static quant::GgmlType storage_type() {
    return std::is_same_v<T, uint16_t> ? quant::GgmlType::F16 : quant::GgmlType::F32;
  }

  // In place: scores of one query row → probabilities; keys at or past `visible` get 0 (causal mask).
  // As ggml's soft_max: scale, max, exp in float, the sum accumulated in double, one float reciprocal.
  void softmax_row(float* s, int visible, int n_keys) const {
    float max_w = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < visible; ++j) {
      s[j] *= shape_.kq_scale;
      max_w = std::max(max_w, s[j]);
    }
    double sum = 0.0;
    for (int j = 0; j < visible; ++j) {
      s[j] = std::exp(s[j] - max_w);
      sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < visible; ++j) s[j] *= inv;
    for (int j = visible; j < n_keys; ++j) s[j] = 0.0f;
  }

  T* key_row(int layer, int pos) { return keys_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_; }
  const T* key_row(int layer, int pos) const {
    return keys_.get() + (static_cast<size_t>(layer) * capacity_ + pos) * row_;
  }
  // Values are stored transposed: channel c of layer l holds positions [0, capacity) contiguously.
  T* value_channel(int layer, size_t c) { return values_.get() + (static_cast<size_t>(layer) * row_ + c) * capacity_; }
  const T* value_channel(int layer, size_t c) const {
    return values_.get() + (static_cast<size_t>(layer) * row_ + c) * capacity_;
  }

  KvShape shape_;
  int capacity_;
  size_t row_;                  // n_head_kv * head_dim
  // Left uninitialized so that memory is only touched (and counted) as positions fill.
  std::unique_ptr<T[]> keys_;    // (n_layer, capacity, n_head_kv * head_dim), post-RoPE
  std::unique_ptr<T[]> values_;  // (n_layer, n_head_kv * head_dim, capacity): transposed
  std::vector<Scratch> scratch_;  // per thread that runs heads
};

}  // namespace

std::unique_ptr<KvCache> make_full_kv_cache(const KvShape& shape, int capacity, KvStorage storage) {
  if (storage == KvStorage::F16) return std::make_unique<FullKvCache<uint16_t>>(shape, capacity);
  return std::make_unique<FullKvCache<float>>(shape, capacity);
}

}  // namespace hcattn::model
