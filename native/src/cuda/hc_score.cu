#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"
#include "kv/codebook.h"

namespace hcattn::cuda {

namespace {

constexpr int kScoreThreads = 256;
constexpr int kScoreTokensPerThread = 8;  // tokens a thread scores per block: amortizes the LUT load

// One thread per centroid; __fmul_rn/__fadd_rn keep the multiply and add separate like the CPU loop.
__global__ void build_lut_kernel(const float* __restrict__ q, const float* __restrict__ centroids, CodebookShape cb,
                                 float* __restrict__ lut) {
  const int grp = blockIdx.x, h = blockIdx.y;
  const int sub = cb.dim / cb.groups, c = cb.centroids_per_group;
  const float* qg = q + static_cast<size_t>(h) * cb.dim + grp * sub;
  const float* book = centroids + static_cast<size_t>(grp) * c * sub;
  float* row = lut + (static_cast<size_t>(h) * cb.groups + grp) * c;
  for (int k = threadIdx.x; k < c; k += blockDim.x) {
    float dot = 0;
    for (int j = 0; j < sub; ++j) dot = __fadd_rn(dot, __fmul_rn(qg[j], book[static_cast<size_t>(k) * sub + j]));
    row[k] = dot;
  }
}

// A code word holds the centroid index in its low bits and the residual level in its high bits
// (kv/codebook.h); only the index addresses the LUT.
constexpr uint16_t kCodeIndexMask = kv::KeyCodebook::kIndexMask;

// Blocks are laid out head-fastest, so the query heads of one token range run side by side and the
// codes they share come from L2 after the first read. The head's LUT sits in shared memory when it
// fits (lut_in_shared), else it is read through the L1 cache.
__global__ void __launch_bounds__(kScoreThreads)
    score_codes_kernel(const float* __restrict__ lut, const uint16_t* __restrict__ codes, int64_t n, int n_heads,
                       CodebookShape cb, bool lut_in_shared, float* __restrict__ scores) {
  extern __shared__ float lut_shared[];
  const int h = blockIdx.x % n_heads;
  const int64_t chunk = blockIdx.x / n_heads;
  const int g = cb.groups, c = cb.centroids_per_group;
  const float* head_lut = lut + static_cast<size_t>(h) * g * c;
  if (lut_in_shared) {
    for (int i = threadIdx.x; i < g * c; i += blockDim.x) lut_shared[i] = head_lut[i];
    __syncthreads();
    head_lut = lut_shared;
  }
  const int64_t first = chunk * kScoreThreads * kScoreTokensPerThread;
  for (int t = 0; t < kScoreTokensPerThread; ++t) {
    const int64_t j = first + t * kScoreThreads + threadIdx.x;
    if (j >= n) break;
    const uint16_t* cj = codes + j * g;
    float s = 0;
    if (g % 8 == 0) {
      // 16-byte loads of eight codes; rows are 16-byte aligned since g is a multiple of 8.
      for (int grp = 0; grp < g; grp += 8) {
        const uint4 raw = __ldg(reinterpret_cast<const uint4*>(cj + grp));
        const uint16_t* k8 = reinterpret_cast<const uint16_t*>(&raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) s += head_lut[(grp + i) * c + (k8[i] & kCodeIndexMask)];
      }
    } else {
      for (int grp = 0; grp < g; ++grp) s += head_lut[grp * c + (cj[grp] & kCodeIndexMask)];
    }
    scores[static_cast<size_t>(h) * n + j] = s;
  }
}

void check_shape(const CodebookShape& cb) {
  if (cb.groups <= 0 || cb.dim % cb.groups != 0 || cb.centroids_per_group <= 0 || cb.centroids_per_group > 65536) {
    throw Error("CUDA HCAttention: codebook of dim " + std::to_string(cb.dim) + ", " + std::to_string(cb.groups) +
                " groups, " + std::to_string(cb.centroids_per_group) + " centroids is not valid");
  }
}

__global__ void fill_codes_kernel(uint16_t* codes, size_t count, int c, uint64_t seed) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count; i += stride) {
    uint64_t x = (seed + i) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    codes[i] = static_cast<uint16_t>(x % static_cast<uint64_t>(c));
  }
}

}  // namespace

void fill_random_codes(uint16_t* codes, int64_t n, const CodebookShape& cb, uint64_t seed, cudaStream_t stream) {
  check_shape(cb);
  fill_codes_kernel<<<1024, 256, 0, stream>>>(codes, static_cast<size_t>(n) * cb.groups, cb.centroids_per_group, seed);
  CUDA_CHECK_LAUNCH();
}

void build_lut(const float* q, const float* centroids, int n_heads, const CodebookShape& cb, float* lut,
               cudaStream_t stream) {
  check_shape(cb);
  if (n_heads <= 0) return;
  build_lut_kernel<<<dim3(cb.groups, n_heads), 128, 0, stream>>>(q, centroids, cb, lut);
  CUDA_CHECK_LAUNCH();
}

void score_codes(const float* lut, const uint16_t* codes, int64_t n, int n_heads, const CodebookShape& cb,
                 float* scores, cudaStream_t stream) {
  check_shape(cb);
  if (n <= 0 || n_heads <= 0) return;
  int device = 0, max_shared = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const size_t lut_bytes = static_cast<size_t>(cb.groups) * cb.centroids_per_group * sizeof(float);
  const bool in_shared = lut_bytes <= static_cast<size_t>(max_shared);
  const size_t shared = in_shared ? lut_bytes : 0;
  if (shared > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(score_codes_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(shared)));
  }
  const int64_t chunks = (n + kScoreThreads * kScoreTokensPerThread - 1) / (kScoreThreads * kScoreTokensPerThread);
  if (chunks * n_heads > INT32_MAX) throw Error("CUDA HCAttention: too many tokens to score in one call");
  score_codes_kernel<<<static_cast<unsigned>(chunks * n_heads), kScoreThreads, shared, stream>>>(
      lut, codes, n, n_heads, cb, in_shared, scores);
  CUDA_CHECK_LAUNCH();
}

}  // namespace hcattn::cuda
