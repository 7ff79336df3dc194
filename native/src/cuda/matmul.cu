#include <mma.h>

#include <string>

#include "cuda/common.cuh"
#include "cuda/dequant.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

using quant::GgmlType;

// GEMV: one warp per weight row, each lane 8 consecutive elements per step (a warp covers 256), up to
// kGemvMaxTokens activation rows per launch so a small batch reads the weights once.
constexpr int kGemvMaxTokens = 8;
constexpr int kGemvWarps = 4;

template <GgmlType T>
__global__ void __launch_bounds__(kGemvWarps * kWarp)
    gemv_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int cols,
                const float* __restrict__ x, int n_tokens, float* __restrict__ y) {
  const int lane = threadIdx.x % kWarp;
  const int r = blockIdx.x * kGemvWarps + threadIdx.x / kWarp;
  if (r >= rows) return;
  const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
  float acc[kGemvMaxTokens] = {};
#pragma unroll 2
  for (int k = lane * 8; k < cols; k += kWarp * 8) {
    float v[8];
    dequant8<T>(row, k, v);
#pragma unroll
    for (int t = 0; t < kGemvMaxTokens; ++t) {
      if (t < n_tokens) {
        const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * cols + k);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        acc[t] += v[0] * a.x + v[1] * a.y + v[2] * a.z + v[3] * a.w + v[4] * b.x + v[5] * b.y + v[6] * b.z + v[7] * b.w;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kGemvMaxTokens; ++t) {
    if (t < n_tokens) {
      const float s = warp_sum(acc[t]);
      if (lane == 0) y[static_cast<size_t>(t) * rows + r] = s;
    }
  }
}

// GEMM: a 128 (weight rows) × 128 (tokens) output tile per block of 8 warps, K in steps of 32. Each
// step dequantizes the weight tile and converts the activation tile to F16 in shared memory; each warp
// multiplies a 64×32 sub-tile with 16×16×16 wmma operations into F32 accumulators.
constexpr int kTileM = 128, kTileN = 128, kTileK = 32;
constexpr int kGemmThreads = 256;
constexpr int kLds = kTileK + 8;  // padded row (halves): a multiple of 8 as wmma needs, fewer bank conflicts
constexpr int kWarpM = 64, kWarpN = 32;
constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 16;

template <GgmlType T>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int rows, int cols,
                const float* __restrict__ x, int n_tokens, float* __restrict__ y) {
  using namespace nvcuda;
  __shared__ __align__(32) __half ws[kTileM * kLds];  // (tile row, k)
  __shared__ __align__(32) __half xs[kTileN * kLds];  // (tile token, k)
  __shared__ __align__(32) float scratch[kGemmThreads / kWarp][16 * 16];

  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int wm = (warp / (kTileN / kWarpN)) * kWarpM;  // 2 warps down, 4 across
  const int wn = (warp % (kTileN / kWarpN)) * kWarpN;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFragsM][kFragsN];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragsN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int k0 = 0; k0 < cols; k0 += kTileK) {
    // 512 groups of 8 elements per operand tile: two per thread.
#pragma unroll
    for (int it = 0; it < 2; ++it) {
      const int g = threadIdx.x + it * kGemmThreads;
      const int tr = g / (kTileK / 8), tk = (g % (kTileK / 8)) * 8;
      float v[8] = {};
      if (m0 + tr < rows) dequant8<T>(w + static_cast<size_t>(m0 + tr) * row_bytes, k0 + tk, v);
      __half2* dst = reinterpret_cast<__half2*>(&ws[tr * kLds + tk]);
#pragma unroll
      for (int i = 0; i < 4; ++i) dst[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);

      float4 a = make_float4(0, 0, 0, 0), b = a;
      if (n0 + tr < n_tokens) {
        const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(n0 + tr) * cols + k0 + tk);
        a = __ldg(xp);
        b = __ldg(xp + 1);
      }
      __half2* xd = reinterpret_cast<__half2*>(&xs[tr * kLds + tk]);
      xd[0] = __floats2half2_rn(a.x, a.y);
      xd[1] = __floats2half2_rn(a.z, a.w);
      xd[2] = __floats2half2_rn(b.x, b.y);
      xd[3] = __floats2half2_rn(b.z, b.w);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[kFragsM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[kFragsN];
#pragma unroll
      for (int i = 0; i < kFragsM; ++i) wmma::load_matrix_sync(fa[i], &ws[(wm + 16 * i) * kLds + kk], kLds);
      // B(k, token) = xs[token][k]: column-major with leading dimension kLds.
#pragma unroll
      for (int j = 0; j < kFragsN; ++j) wmma::load_matrix_sync(fb[j], &xs[(wn + 16 * j) * kLds + kk], kLds);
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }

  // Each fragment goes through the warp's scratch (column-major: token-major) so that y, which is
  // (token, row), is written 16 consecutive rows at a time with bounds checks.
  float* sc = scratch[warp];
#pragma unroll
  for (int i = 0; i < kFragsM; ++i) {
#pragma unroll
    for (int j = 0; j < kFragsN; ++j) {
      wmma::store_matrix_sync(sc, acc[i][j], 16, wmma::mem_col_major);
      __syncwarp();
      for (int idx = lane; idx < 256; idx += kWarp) {
        const int r = m0 + wm + 16 * i + idx % 16;
        const int t = n0 + wn + 16 * j + idx / 16;
        if (r < rows && t < n_tokens) y[static_cast<size_t>(t) * rows + r] = sc[idx];
      }
      __syncwarp();
    }
  }
}

void check_weight(const DeviceWeight& w) {
  if (!matmul_supports(w.type)) {
    throw Error(std::string("the CUDA matmul does not support weight type ") + quant::type_name(w.type) +
                " (supported: Q4_0 Q8_0 Q4_K Q6_K F16 BF16 F32); run this model on the CPU backend");
  }
  const int64_t block = (w.type == GgmlType::Q4_K || w.type == GgmlType::Q6_K) ? quant::QK_K : quant::QK;
  if (w.cols % block != 0 || w.cols > INT32_MAX || w.rows > INT32_MAX) {
    throw Error("CUDA matmul: a " + std::string(quant::type_name(w.type)) + " weight of " + std::to_string(w.cols) +
                " columns is not a whole number of " + std::to_string(block) + "-element blocks");
  }
}

template <GgmlType T>
void launch_gemv(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
  for (int64_t t0 = 0; t0 < n_tokens; t0 += kGemvMaxTokens) {
    const int nt = static_cast<int>(std::min<int64_t>(kGemvMaxTokens, n_tokens - t0));
    gemv_kernel<T><<<blocks_for(w.rows, kGemvWarps), kGemvWarps * kWarp, 0, stream>>>(
        static_cast<const uint8_t*>(w.data), w.row_bytes, static_cast<int>(w.rows), static_cast<int>(w.cols),
        x + t0 * w.cols, nt, y + t0 * w.rows);
    CUDA_CHECK_LAUNCH();
  }
}

template <GgmlType T>
void launch_gemm(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
  const dim3 grid(blocks_for(w.rows, kTileM), blocks_for(n_tokens, kTileN));
  gemm_kernel<T><<<grid, kGemmThreads, 0, stream>>>(static_cast<const uint8_t*>(w.data), w.row_bytes,
                                                    static_cast<int>(w.rows), static_cast<int>(w.cols), x,
                                                    static_cast<int>(n_tokens), y);
  CUDA_CHECK_LAUNCH();
}

__device__ __forceinline__ uint32_t mix32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return static_cast<uint32_t>(x ^ (x >> 33));
}

// Random bytes everywhere, then (second kernel) each block's scale fields overwritten with a half in
// [0.001, 0.02) (F16: every element a half in [-1, 1)): random bytes there would include infinities
// and NaNs.
__global__ void fill_bytes_kernel(uint8_t* data, size_t bytes, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < bytes / 4; i += stride)
    reinterpret_cast<uint32_t*>(data)[i] = mix32(seed + i);
}

__global__ void fill_scales_kernel(uint8_t* data, size_t n_blocks, GgmlType type, size_t block_bytes, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t b = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; b < n_blocks; b += stride) {
    uint8_t* blk = data + b * block_bytes;
    const float u = static_cast<float>(mix32(seed ^ (b * 0x9e3779b97f4a7c15ull)) >> 8) * (1.0f / 16777216.0f);
    const __half scale = __float2half(0.001f + 0.019f * u);
    switch (type) {
      case GgmlType::F16: *reinterpret_cast<__half*>(blk) = __float2half(2.0f * u - 1.0f); break;
      case GgmlType::BF16: *reinterpret_cast<__nv_bfloat16*>(blk) = __float2bfloat16(2.0f * u - 1.0f); break;
      case GgmlType::F32: *reinterpret_cast<float*>(blk) = 2.0f * u - 1.0f; break;
      case GgmlType::Q4_K:
        *reinterpret_cast<__half*>(blk) = scale;
        *reinterpret_cast<__half*>(blk + 2) = scale;
        break;
      case GgmlType::Q6_K: *reinterpret_cast<__half*>(blk + 208) = scale; break;
      default: *reinterpret_cast<__half*>(blk) = scale; break;  // Q4_0, Q8_0: d first
    }
  }
}

}  // namespace

void fill_random_weight(const DeviceWeight& w, uint64_t seed, cudaStream_t stream) {
  check_weight(w);
  int block_elems = 0;
  size_t block_bytes = 0;
  quant::type_geometry(static_cast<int32_t>(w.type), &block_elems, &block_bytes);
  const size_t bytes = w.row_bytes * static_cast<size_t>(w.rows);
  uint8_t* data = static_cast<uint8_t*>(const_cast<void*>(w.data));
  fill_bytes_kernel<<<1024, 256, 0, stream>>>(data, bytes, seed);
  CUDA_CHECK_LAUNCH();
  fill_scales_kernel<<<1024, 256, 0, stream>>>(data, bytes / block_bytes, w.type, block_bytes, seed);
  CUDA_CHECK_LAUNCH();
}

bool matmul_supports(GgmlType t) {
  return t == GgmlType::Q4_0 || t == GgmlType::Q8_0 || t == GgmlType::Q4_K || t == GgmlType::Q6_K ||
         t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::F32;
}

void matmul_gemv(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
  check_weight(w);
  switch (w.type) {
    case GgmlType::Q4_0: return launch_gemv<GgmlType::Q4_0>(w, x, n_tokens, y, stream);
    case GgmlType::Q8_0: return launch_gemv<GgmlType::Q8_0>(w, x, n_tokens, y, stream);
    case GgmlType::Q4_K: return launch_gemv<GgmlType::Q4_K>(w, x, n_tokens, y, stream);
    case GgmlType::Q6_K: return launch_gemv<GgmlType::Q6_K>(w, x, n_tokens, y, stream);
    case GgmlType::BF16: return launch_gemv<GgmlType::BF16>(w, x, n_tokens, y, stream);
    case GgmlType::F32: return launch_gemv<GgmlType::F32>(w, x, n_tokens, y, stream);
    default: return launch_gemv<GgmlType::F16>(w, x, n_tokens, y, stream);
  }
}

void matmul_gemm(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
  check_weight(w);
  if (n_tokens > static_cast<int64_t>(65535) * kTileN) throw Error("CUDA matmul: too many tokens in one call; split the chunk");
  switch (w.type) {
    case GgmlType::Q4_0: return launch_gemm<GgmlType::Q4_0>(w, x, n_tokens, y, stream);
    case GgmlType::Q8_0: return launch_gemm<GgmlType::Q8_0>(w, x, n_tokens, y, stream);
    case GgmlType::Q4_K: return launch_gemm<GgmlType::Q4_K>(w, x, n_tokens, y, stream);
    case GgmlType::Q6_K: return launch_gemm<GgmlType::Q6_K>(w, x, n_tokens, y, stream);
    case GgmlType::BF16: return launch_gemm<GgmlType::BF16>(w, x, n_tokens, y, stream);
    case GgmlType::F32: return launch_gemm<GgmlType::F32>(w, x, n_tokens, y, stream);
    default: return launch_gemm<GgmlType::F16>(w, x, n_tokens, y, stream);
  }
}

void matmul(const DeviceWeight& w, const float* x, int64_t n_tokens, float* y, cudaStream_t stream) {
  // Up to a couple of GEMV batches the weights stream once per 8 tokens at full bandwidth; beyond
  // that the tensor cores win. F32 weights (test models) stay on the F32 GEMV at any batch: the
  // tensor-core path rounds to F16, which an F32 model's reference results do not.
  if (n_tokens <= 2 * kGemvMaxTokens || w.type == GgmlType::F32) matmul_gemv(w, x, n_tokens, y, stream);
  else matmul_gemm(w, x, n_tokens, y, stream);
}

}  // namespace hcattn::cuda
