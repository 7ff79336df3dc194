#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

constexpr int kAttnWarps = 4;
constexpr int kQueriesPerWarp = 4;
constexpr int kQueryTile = kAttnWarps * kQueriesPerWarp;  // queries per block
constexpr int kKeyTile = kWarp;                           // keys per tile: one per lane when scoring
constexpr int kMaxHeadDim = 128;
constexpr int kDimsPerLane = kMaxHeadDim / kWarp;

__device__ __forceinline__ float kv_to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float kv_to_float(float x) { return x; }

// One block per (16 queries, query head). Each key tile is loaded once into shared memory and used by
// all 16 queries. Scoring: lane l computes the full dot product for key l of the tile (keys padded to
// an odd row length so the 32 lanes hit 32 banks). Values: lane l owns dims l, l+32, ... and gathers
// the tile's probabilities from the other lanes by shuffle. KV is __half (f16 caches) or float (F32
// caches, the CPU's exact reference path).
template <typename KV>
__global__ void __launch_bounds__(kAttnWarps * kWarp)
    attention_prefill_kernel(const float* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                             float* __restrict__ out, AttentionShape s) {
  __shared__ float qs[kQueryTile][kMaxHeadDim];
  __shared__ float ks[kKeyTile][kMaxHeadDim + 1];
  __shared__ float vs[kKeyTile][kMaxHeadDim];

  const int h = blockIdx.y;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const int q0 = blockIdx.x * kQueryTile;
  const int offset = s.n_k - s.n_q;  // query i sits at position offset + i
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int d = s.head_dim;
  const int q_stride = s.n_head * d, kv_stride = s.n_head_kv * d;

  for (int idx = threadIdx.x; idx < kQueryTile * d; idx += blockDim.x) {
    const int qi = idx / d, c = idx % d;
    qs[qi][c] = q0 + qi < s.n_q ? q[static_cast<size_t>(q0 + qi) * q_stride + h * d + c] * s.scale : 0.0f;
  }

  float m[kQueriesPerWarp], l[kQueriesPerWarp], o[kQueriesPerWarp][kDimsPerLane];
#pragma unroll
  for (int u = 0; u < kQueriesPerWarp; ++u) {
    m[u] = -INFINITY;
    l[u] = 0;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) o[u][c] = 0;
  }

  const int last_query = min(q0 + kQueryTile, s.n_q) - 1;
  const int key_end = offset + last_query + 1;  // keys [0, key_end) are visible to some query here
  for (int j0 = 0; j0 < key_end; j0 += kKeyTile) {
    __syncthreads();  // the previous tile is no longer read (and qs is written, on the first pass)
    for (int idx = threadIdx.x; idx < kKeyTile * d; idx += blockDim.x) {
      const int jj = idx / d, c = idx % d;
      const bool in = j0 + jj < s.n_k;
      const size_t at = static_cast<size_t>(j0 + jj) * kv_stride + kvh * d + c;
      ks[jj][c] = in ? kv_to_float(k[at]) : 0.0f;
      vs[jj][c] = in ? kv_to_float(v[at]) : 0.0f;
    }
    __syncthreads();

#pragma unroll
    for (int u = 0; u < kQueriesPerWarp; ++u) {
      // Interleaved so that the warps share the causal work evenly.
      const int qi = warp + kAttnWarps * u;
      if (q0 + qi >= s.n_q) continue;  // warp-uniform
      const int j = j0 + lane;
      float score = -INFINITY;
      if (j < s.n_k && j <= offset + q0 + qi) {
        score = 0;
        for (int c = 0; c < d; ++c) score += qs[qi][c] * ks[lane][c];
      }
      // Key 0 is in the first tile and visible to every query, so m is finite after it.
      const float m_new = fmaxf(m[u], warp_max(score));
      const float p = __expf(score - m_new);
      const float corr = __expf(m[u] - m_new);
      l[u] = l[u] * corr + warp_sum(p);
#pragma unroll
      for (int c = 0; c < kDimsPerLane; ++c) o[u][c] *= corr;
      for (int jj = 0; jj < kKeyTile; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
        for (int c = 0; c < kDimsPerLane; ++c)
          if (lane + kWarp * c < d) o[u][c] += pj * vs[jj][lane + kWarp * c];
      }
      m[u] = m_new;
    }
  }

#pragma unroll
  for (int u = 0; u < kQueriesPerWarp; ++u) {
    const int qi = warp + kAttnWarps * u;
    if (q0 + qi >= s.n_q) continue;
    float* dst = out + static_cast<size_t>(q0 + qi) * q_stride + h * d;
    const float inv = 1.0f / l[u];
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c)
      if (lane + kWarp * c < d) dst[lane + kWarp * c] = o[u][c] * inv;
  }
}

// Decode (a few queries over many keys): the chunk kernel would run one block per head, a quarter of
// the chip at best. Instead the keys are split into ranges of kSplitKeys, one block per (range, head,
// query); each warp walks every kAttnWarps-th key of the range with the query in registers (lane l owns
// dims l, l+32, ...; one warp sum per key) and its own online softmax. The block merges its warps and
// writes the range's (max, sum, unnormalised output); a second kernel merges the ranges.
constexpr int kSplitKeys = 1024;
constexpr int kSplitMaxQueries = 4;

template <typename KV>
__global__ void __launch_bounds__(kAttnWarps * kWarp)
    attention_split_kernel(const float* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                           AttentionShape s, float* __restrict__ part_m, float* __restrict__ part_l,
                           float* __restrict__ part_o) {
  __shared__ float wm[kAttnWarps], wl[kAttnWarps];
  __shared__ float wo[kAttnWarps][kMaxHeadDim];
  const int split = blockIdx.x, h = blockIdx.y, qi = blockIdx.z;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int d = s.head_dim;
  const int kv_stride = s.n_head_kv * d;
  const int visible = s.n_k - s.n_q + qi + 1;  // keys [0, visible) for this query
  const int begin = split * kSplitKeys, end = min(begin + kSplitKeys, visible);

  float qr[kDimsPerLane], o[kDimsPerLane];
  const float* qrow = q + (static_cast<size_t>(qi) * s.n_head + h) * d;
#pragma unroll
  for (int c = 0; c < kDimsPerLane; ++c) {
    const int dim = lane + kWarp * c;
    qr[c] = dim < d ? qrow[dim] * s.scale : 0.0f;
    o[c] = 0;
  }
  float m = -INFINITY, l = 0;
  for (int j = begin + warp; j < end; j += kAttnWarps) {
    const KV* krow = k + static_cast<size_t>(j) * kv_stride + kvh * d;
    const KV* vrow = v + static_cast<size_t>(j) * kv_stride + kvh * d;
    float dot = 0;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int dim = lane + kWarp * c;
      if (dim < d) dot += qr[c] * kv_to_float(krow[dim]);
    }
    const float score = warp_sum(dot);
    const float m_new = fmaxf(m, score);
    const float corr = __expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = __expf(score - m_new);
    l = l * corr + p;
#pragma unroll
    for (int c = 0; c < kDimsPerLane; ++c) {
      const int dim = lane + kWarp * c;
      o[c] = o[c] * corr + (dim < d ? p * kv_to_float(vrow[dim]) : 0.0f);
    }
    m = m_new;
  }
#pragma unroll
  for (int c = 0; c < kDimsPerLane; ++c)
    if (lane + kWarp * c < d) wo[warp][lane + kWarp * c] = o[c];
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
  __syncthreads();
  float block_m = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) block_m = fmaxf(block_m, wm[w]);
  const size_t part = (static_cast<size_t>(qi) * s.n_head + h) * gridDim.x + split;
  for (int t = threadIdx.x; t < d; t += blockDim.x) {
    float sum = 0;
    if (block_m != -INFINITY)
      for (int w = 0; w < kAttnWarps; ++w) sum += wo[w][t] * __expf(wm[w] - block_m);
    part_o[part * d + t] = sum;
  }
  if (threadIdx.x == 0) {
    float sum = 0;
    if (block_m != -INFINITY)
      for (int w = 0; w < kAttnWarps; ++w) sum += wl[w] * __expf(wm[w] - block_m);
    part_m[part] = block_m;
    part_l[part] = sum;
  }
}

// One block per (query head, query): merges the ranges. Range 0 holds key 0, which every query sees,
// so the maximum is finite; empty ranges (max -inf, sum 0) weigh 0.
__global__ void attention_merge_kernel(const float* __restrict__ part_m, const float* __restrict__ part_l,
                                       const float* __restrict__ part_o, int n_split, AttentionShape s,
                                       float* __restrict__ out) {
  const int h = blockIdx.x, qi = blockIdx.y, d = s.head_dim;
  const size_t first = (static_cast<size_t>(qi) * s.n_head + h) * n_split;
  float m = -INFINITY;
  for (int i = 0; i < n_split; ++i) m = fmaxf(m, part_m[first + i]);
  float l = 0;
  for (int i = 0; i < n_split; ++i) l += part_l[first + i] * __expf(part_m[first + i] - m);
  for (int t = threadIdx.x; t < d; t += blockDim.x) {
    float acc = 0;
    for (int i = 0; i < n_split; ++i) acc += part_o[(first + i) * d + t] * __expf(part_m[first + i] - m);
    out[(static_cast<size_t>(qi) * s.n_head + h) * d + t] = acc / l;
  }
}

template <typename KV>
void launch_split(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& s, cudaStream_t stream) {
  const int n_split = static_cast<int>(blocks_for(s.n_k, kSplitKeys));
  const size_t parts = static_cast<size_t>(s.n_q) * s.n_head * n_split;
  // Stream-ordered scratch: no device-wide synchronisation, reused from the pool across steps.
  float* scratch = nullptr;
  CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&scratch), parts * (2 + s.head_dim) * sizeof(float), stream));
  float* part_m = scratch;
  float* part_l = scratch + parts;
  float* part_o = scratch + 2 * parts;
  attention_split_kernel<KV><<<dim3(n_split, s.n_head, s.n_q), kAttnWarps * kWarp, 0, stream>>>(q, k, v, s, part_m,
                                                                                                  part_l, part_o);
  CUDA_CHECK_LAUNCH();
  attention_merge_kernel<<<dim3(s.n_head, s.n_q), kMaxHeadDim, 0, stream>>>(part_m, part_l, part_o, n_split, s, out);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaFreeAsync(scratch, stream));
}

void check_shape(const AttentionShape& s) {
  if (s.head_dim <= 0 || s.head_dim > kMaxHeadDim) {
    throw Error("CUDA attention: head_dim " + std::to_string(s.head_dim) + " is not supported (at most 128)");
  }
  if (s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0) {
    throw Error("CUDA attention: n_head " + std::to_string(s.n_head) + " is not a multiple of n_head_kv " +
                std::to_string(s.n_head_kv));
  }
  if (s.n_q > s.n_k) throw Error("CUDA attention: more queries than keys (the chunk's own keys must be included)");
}

template <typename KV>
void launch(const float* q, const KV* k, const KV* v, float* out, const AttentionShape& s, cudaStream_t stream) {
  check_shape(s);
  if (s.n_q <= 0) return;
  if (s.n_q <= kSplitMaxQueries) return launch_split(q, k, v, out, s, stream);
  const dim3 grid(blocks_for(s.n_q, kQueryTile), s.n_head);
  attention_prefill_kernel<KV><<<grid, kAttnWarps * kWarp, 0, stream>>>(q, k, v, out, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_prefill(const float* q, const uint16_t* k, const uint16_t* v, float* out, const AttentionShape& s,
                       cudaStream_t stream) {
  launch(q, reinterpret_cast<const __half*>(k), reinterpret_cast<const __half*>(v), out, s, stream);
}

void attention_prefill(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                       cudaStream_t stream) {
  launch(q, k, v, out, s, stream);
}

}  // namespace hcattn::cuda
