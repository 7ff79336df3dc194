// HCAttention top-p token selection on the GPU, the same selection as kv::select_tokens on the CPU
// (same histogram over [max - 40, max] in 4096 bins, same boundary-bin walk in (score desc, position
// asc) order, same margin, k_max, sinks and recent window), for many query heads in one pass.
// Index sets equal the CPU's; weights agree to float rounding (sums are added in another order).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "cuda/runtime.h"
#include "kv/selection.h"

namespace hcattn::cuda {

// Owns the device workspace, so repeated selections (every layer, every step) allocate nothing once
// the largest shape has been seen.
class Selector {
 public:
  // scores: (n_heads, n) on the device, already scaled logits. Runs on `stream`, waits for it, and
  // fills out[h] for every head. n must be below 2^31.
  void select(const float* scores, int n_heads, int64_t n, const kv::SelectParams& params, cudaStream_t stream,
              std::vector<kv::Selection>& out);

  // The last select()'s result on the device, heads concatenated: head h's tokens are
  // [offsets[h], offsets[h+1]) of index (ascending positions) and weight (normalised).
  const int32_t* device_index() const { return index_.get(); }
  const float* device_weight() const { return weight_.get(); }
  const int32_t* device_offsets() const { return head_offsets_.get(); }

 private:
  DeviceBuffer<uint32_t> max_bits_, lowest_bits_;
  DeviceBuffer<double> bin_mass_, head_info_;
  DeviceBuffer<uint32_t> bin_count_;
  DeviceBuffer<int32_t> boundary_, edge_n_, chunk_count_, chunk_offset_, head_offsets_, index_;
  DeviceBuffer<float> cut_, weight_;
  DeviceBuffer<double> head_sum_;
  DeviceBuffer<uint8_t> flags_;
  DeviceBuffer<unsigned long long> keys_;
};

}  // namespace hcattn::cuda
