// The plain full-attention KV cache in device memory, for the CUDA backend's `full` mode: keys and
// values of every layer stay on the GPU and the chunk-attention kernel reads them there. It also
// honours the host-pointer KvCache interface (copies both ways), so any caller can use it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "cuda/runtime.h"
#include "model/kv_cache.h"

namespace hcattn::cuda {

class DeviceKvCache final : public model::KvCache {
 public:
  // F16 storage rounds K and V to f16 when stored (the query and probabilities stay F32: the GPU
  // rounds less than the CPU's F16 cache); F32 storage keeps them exact.
  DeviceKvCache(const model::KvShape& shape, int capacity, model::KvStorage storage);

  int capacity() const override { return capacity_; }
  model::KvBytes bytes() const override;
  void store(int layer, int pos, int n_tokens, const float* k, const float* v) override;
  void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) override;
  std::unique_ptr<model::KvCache> clone_prefix(int n) const override;

  // The same two steps on device pointers, queued on `stream`. k, v: (n_tokens, n_head_kv * head_dim);
  // q, out: (n_tokens, n_head * head_dim).
  void store_device(int layer, int pos, int n_tokens, const float* k, const float* v, cudaStream_t stream);
  void attend_device(int layer, int pos, int n_tokens, const float* q, float* out, cudaStream_t stream) const;
  // Random keys and values in [-1, 1) for positions [0, n) of every layer (benchmarks at long
  // context without a long prefill first).
  void fill_random(int n, uint64_t seed, cudaStream_t stream);

 private:
  void check_range(int layer, int pos, int n_tokens) const;
  size_t row_elems() const { return static_cast<size_t>(shape_.n_head_kv) * shape_.head_dim; }
  size_t layer_bytes() const { return static_cast<size_t>(capacity_) * row_elems() * elem_bytes_; }
  uint8_t* at(const DeviceBuffer<uint8_t>& b, int layer, int pos) const {
    return b.get() + layer * layer_bytes() + static_cast<size_t>(pos) * row_elems() * elem_bytes_;
  }

  model::KvShape shape_;
  int capacity_;
  model::KvStorage storage_;
  size_t elem_bytes_;
  DeviceBuffer<uint8_t> k_, v_;  // (n_layer, capacity, n_head_kv, head_dim) each
  DeviceBuffer<float> scratch_;  // F32 staging of new rows before the f16 rounding
  Stream stream_;                // for the host-pointer calls
};

}  // namespace hcattn::cuda
