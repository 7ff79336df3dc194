// The KV cache behind one narrow interface. The forward pass hands it each layer's post-RoPE keys and
// values and asks it for the attention output; how keys and values are stored and which of them a
// query reads (all of them here; HCAttention's selection later) is the cache's business.
//
// Invariants: positions are dense, [0, n) of a context; attend() for a query at position p reads
// entries [0, p] of the same layer, which must all have been stored; truncating a context only lowers
// its n, so entries past it are simply overwritten later.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cpu/threadpool.h"
#include "model/rope.h"

namespace hcattn::model {

struct KvShape {
  int n_layer = 0;
  int n_head = 0;      // query heads
  int n_head_kv = 0;   // key/value heads; query head h reads KV head h / (n_head / n_head_kv)
  int head_dim = 0;
  float kq_scale = 0;  // multiplies q·k before the softmax
  // The model's rotary embedding (owned by the model, which outlives its caches): a post-RoPE key at
  // position p turns into the same key at p + δ when rotated by the angles of δ. HCAttention uses it to
  // train key codebooks that hold for every position, not just the calibration ones.
  const Rope* rope = nullptr;
};

// Bytes a cache has allocated in each memory tier (buffer capacities, not a formula).
struct KvBytes {
  size_t fast = 0;  // GPU memory or hot RAM: what every decode step reads
  size_t host = 0;  // host RAM: read only for the tokens a step selects
};

class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual int capacity() const = 0;
  virtual KvBytes bytes() const = 0;

  // k, v: (n_tokens, n_head_kv * head_dim) for positions [pos, pos + n_tokens) of one layer.
  virtual void store(int layer, int pos, int n_tokens, const float* k, const float* v) = 0;
  // The same, from a forward pass whose threads are idle meanwhile: a cache whose store does real work
  // (HCAttention encodes the keys, and trains codebooks once) spreads it over them. By default: store().
  virtual void store_parallel(int layer, int pos, int n_tokens, const float* k, const float* v, cpu::ThreadPool& pool) {
    (void)pool;
    store(layer, pos, n_tokens, k, v);
  }
  // Causal attention for n_tokens queries at positions [pos, pos + n_tokens) of one layer.
  // q, out: (n_tokens, n_head * head_dim).
  virtual void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) = 0;
  // A cache holding a copy of positions [0, n).
  virtual std::unique_ptr<KvCache> clone_prefix(int n) const = 0;
  // The context now ends at n: state derived from positions past n must not survive (the entries
  // themselves are overwritten as new positions are stored).
  virtual void truncate(int n) {}
};

enum class KvStorage { F32, F16 };

// The plain full-attention cache: every key and value kept, every query attends to all of them.
// With F16 storage it rounds where llama.cpp's F16 cache rounds without flash attention (FORMATS §6.2):
// K and V when stored, the query before q·k, and the probabilities before p·V.
std::unique_ptr<KvCache> make_full_kv_cache(const KvShape& shape, int capacity, KvStorage storage);

}  // namespace hcattn::model
