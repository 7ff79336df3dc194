#include "cuda/kv_cache_cuda.h"

#include <string>
#include <vector>

#include "cuda/ops.h"
#include "quant/types.h"

namespace hcattn::cuda {

DeviceKvCache::DeviceKvCache(const model::KvShape& shape, int capacity, model::KvStorage storage)
    : shape_(shape),
      capacity_(capacity),
      storage_(storage),
      elem_bytes_(storage == model::KvStorage::F16 ? 2 : 4) {
  if (capacity <= 0) throw Error("KV cache capacity must be positive");
  const size_t total = layer_bytes() * shape.n_layer;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (2 * total > free_b) {
    throw Error("the full KV cache of " + std::to_string(capacity) + " positions needs " +
                std::to_string(2 * total >> 20) + " MiB of GPU memory, " + std::to_string(free_b >> 20) +
                " MiB are free; use a smaller context, --kv f16, or an HCAttention budget (50%, 25%, 12.5%)");
  }
  k_.resize(total);
  v_.resize(total);
}

model::KvBytes DeviceKvCache::bytes() const { return {k_.size() + v_.size(), 0}; }

void DeviceKvCache::check_range(int layer, int pos, int n_tokens) const {
  if (layer < 0 || layer >= shape_.n_layer || pos < 0 || n_tokens < 0 || pos + n_tokens > capacity_) {
    throw Error("KV cache: layer " + std::to_string(layer) + " positions [" + std::to_string(pos) + ", " +
                std::to_string(pos + n_tokens) + ") are outside its " + std::to_string(capacity_) + " positions");
  }
}

void DeviceKvCache::store_device(int layer, int pos, int n_tokens, const float* k, const float* v, cudaStream_t stream) {
  check_range(layer, pos, n_tokens);
  const int64_t n = static_cast<int64_t>(n_tokens) * row_elems();
  if (storage_ == model::KvStorage::F16) {
    f32_to_f16(k, reinterpret_cast<uint16_t*>(at(k_, layer, pos)), n, stream);
    f32_to_f16(v, reinterpret_cast<uint16_t*>(at(v_, layer, pos)), n, stream);
  } else {
    CUDA_CHECK(cudaMemcpyAsync(at(k_, layer, pos), k, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(at(v_, layer, pos), v, n * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  }
}

void DeviceKvCache::attend_device(int layer, int pos, int n_tokens, const float* q, float* out, cudaStream_t stream) const {
  check_range(layer, pos, n_tokens);
  const AttentionShape s{n_tokens, pos + n_tokens, shape_.n_head, shape_.n_head_kv, shape_.head_dim, shape_.kq_scale};
  if (storage_ == model::KvStorage::F16) {
    attention_prefill(q, reinterpret_cast<const uint16_t*>(at(k_, layer, 0)),
                      reinterpret_cast<const uint16_t*>(at(v_, layer, 0)), out, s, stream);
  } else {
    attention_prefill(q, reinterpret_cast<const float*>(at(k_, layer, 0)), reinterpret_cast<const float*>(at(v_, layer, 0)),
                      out, s, stream);
  }
}

void DeviceKvCache::store(int layer, int pos, int n_tokens, const float* k, const float* v) {
  const size_t n = static_cast<size_t>(n_tokens) * row_elems();
  scratch_.resize(2 * n);
  CUDA_CHECK(cudaMemcpyAsync(scratch_.get(), k, n * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
  CUDA_CHECK(cudaMemcpyAsync(scratch_.get() + n, v, n * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
  store_device(layer, pos, n_tokens, scratch_.get(), scratch_.get() + n, stream_.get());
  stream_.sync();
}

void DeviceKvCache::attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool&) {
  const size_t n = static_cast<size_t>(n_tokens) * shape_.n_head * shape_.head_dim;
  DeviceBuffer<float> dq(n), dout(n);
  CUDA_CHECK(cudaMemcpyAsync(dq.get(), q, n * sizeof(float), cudaMemcpyHostToDevice, stream_.get()));
  attend_device(layer, pos, n_tokens, dq.get(), dout.get(), stream_.get());
  CUDA_CHECK(cudaMemcpyAsync(out, dout.get(), n * sizeof(float), cudaMemcpyDeviceToHost, stream_.get()));
  stream_.sync();
}

std::unique_ptr<model::KvCache> DeviceKvCache::clone_prefix(int n) const {
  auto copy = std::make_unique<DeviceKvCache>(shape_, capacity_, storage_);
  const size_t bytes = static_cast<size_t>(n) * row_elems() * elem_bytes_;
  for (int l = 0; l < shape_.n_layer; ++l) {
    CUDA_CHECK(cudaMemcpyAsync(copy->at(copy->k_, l, 0), at(k_, l, 0), bytes, cudaMemcpyDeviceToDevice, stream_.get()));
    CUDA_CHECK(cudaMemcpyAsync(copy->at(copy->v_, l, 0), at(v_, l, 0), bytes, cudaMemcpyDeviceToDevice, stream_.get()));
  }
  stream_.sync();
  return copy;
}

void DeviceKvCache::fill_random(int n, uint64_t seed, cudaStream_t stream) {
  check_range(0, 0, n);
  const quant::GgmlType t = storage_ == model::KvStorage::F16 ? quant::GgmlType::F16 : quant::GgmlType::F32;
  const int64_t cols = static_cast<int64_t>(row_elems());
  for (int l = 0; l < shape_.n_layer; ++l) {
    const size_t row_bytes = cols * elem_bytes_;
    fill_random_weight(DeviceWeight{t, at(k_, l, 0), n, cols, row_bytes}, seed + 2 * l, stream);
    fill_random_weight(DeviceWeight{t, at(v_, l, 0), n, cols, row_bytes}, seed + 2 * l + 1, stream);
  }
}

}  // namespace hcattn::cuda
