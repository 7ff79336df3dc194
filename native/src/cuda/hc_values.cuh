// HCAttention value sums on the GPU: out[h] = sum over head h's selected tokens of weight · value,
// values as f16 rows. The values may live in device memory or, as the alternative to summing on CPU
// threads, in pinned host memory mapped into the device (PinnedBuffer::device_ptr()): then the GPU
// reads only the selected rows over the bus.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

struct ValueLayout {
  const uint16_t* values = nullptr;  // device-visible pointer (device memory or mapped pinned host memory)
  int64_t token_stride = 0;          // elements between consecutive tokens' rows
  int64_t kv_head_offset = 0;        // elements between consecutive KV heads' rows of one token
  int heads_per_kv = 1;              // query head h reads KV head h / heads_per_kv
  int dim = 0;                       // head dimension, at most 256
};

// index, weight: the selected tokens of all n_heads query heads concatenated; head h's are
// [offsets[h], offsets[h+1]). out: (n_heads, dim). All pointers device-visible.
void sum_selected_values(const int32_t* index, const float* weight, const int32_t* offsets, int n_heads,
                         const ValueLayout& layout, float* out, cudaStream_t stream);

}  // namespace hcattn::cuda
