#include <string>

#include "cuda/dequant.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

// One block per token; each thread dequantizes 8 consecutive elements at a time.
template <GgmlType T>
__global__ void embed_kernel(const uint8_t* __restrict__ table, size_t row_bytes, int cols,
                             const int32_t* __restrict__ ids, float* __restrict__ x) {
  const uint8_t* row = table + static_cast<size_t>(ids[blockIdx.x]) * row_bytes;
  float* out = x + static_cast<size_t>(blockIdx.x) * cols;
  for (int k = threadIdx.x * 8; k < cols; k += blockDim.x * 8) {
    float v[8];
    dequant8<T>(row, k, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[k + i] = v[i];
  }
}

template <GgmlType T>
void launch(const DeviceWeight& t, const int32_t* ids, int n, float* x, cudaStream_t stream) {
  embed_kernel<T><<<n, 128, 0, stream>>>(static_cast<const uint8_t*>(t.data), t.row_bytes, static_cast<int>(t.cols), ids, x);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void embed_rows(const DeviceWeight& table, const int32_t* ids, int n, float* x, cudaStream_t stream) {
  if (!matmul_supports(table.type) || table.cols % 8 != 0) {
    throw Error(std::string("CUDA embedding: a ") + quant::type_name(table.type) + " table of " +
                std::to_string(table.cols) + " columns is not supported");
  }
  if (n <= 0) return;
  switch (table.type) {
    case GgmlType::Q4_0: return launch<GgmlType::Q4_0>(table, ids, n, x, stream);
    case GgmlType::Q8_0: return launch<GgmlType::Q8_0>(table, ids, n, x, stream);
    case GgmlType::Q4_K: return launch<GgmlType::Q4_K>(table, ids, n, x, stream);
    case GgmlType::Q6_K: return launch<GgmlType::Q6_K>(table, ids, n, x, stream);
    case GgmlType::BF16: return launch<GgmlType::BF16>(table, ids, n, x, stream);
    case GgmlType::F32: return launch<GgmlType::F32>(table, ids, n, x, stream);
    default: return launch<GgmlType::F16>(table, ids, n, x, stream);
  }
}

}  // namespace hcattn::cuda
