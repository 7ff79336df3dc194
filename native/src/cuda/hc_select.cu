#include <cub/block/block_scan.cuh>

#include <string>

#include "cuda/common.cuh"
#include "cuda/ops.h"

namespace hcattn::cuda {

namespace {

// The histogram of kv::select_tokens (kv/selection.cpp): scores within kRange nats of the maximum in
// kBins equal bins, everything lower in one last bin. Must stay equal to the CPU's constants.
constexpr double kRange = 40.0;
constexpr int kBins = 4096;

constexpr int kSelectThreads = 256;
constexpr int kTokensPerThread = 16;
constexpr int kChunk = kSelectThreads * kTokensPerThread;  // tokens per block in the per-token passes
constexpr int kSortThreads = 1024;
constexpr int kSharedSort = 4096;  // boundary-bin sets up to this size are sorted in shared memory

struct HeadInfo {  // per head, written by boundary_kernel (as doubles in head_info_)
  double total, target, cum_before, count_below;
};
static_assert(sizeof(HeadInfo) == 4 * sizeof(double), "HeadInfo is stored as four doubles");

// Unsigned keys whose order is the float order (for atomicMax/atomicMin and sorting); -0 counts as +0
// as the CPU's comparisons do.
__device__ __forceinline__ uint32_t ordered_bits(float f) {
  const uint32_t b = __float_as_uint(f + 0.0f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float from_ordered_bits(uint32_t u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}
// Ascending order of these keys is (score descending, position ascending): the CPU's ByScore order.
__device__ __forceinline__ unsigned long long rank_key(float s, int32_t pos) {
  return (static_cast<unsigned long long>(~ordered_bits(s)) << 32) | static_cast<uint32_t>(pos);
}

__device__ __forceinline__ int bin_of(float max_score, float s) {
  const double d = static_cast<double>(max_score) - static_cast<double>(s);
  return d >= kRange ? kBins : static_cast<int>(d * (kBins / kRange));
}

__device__ __forceinline__ double warp_sum_double(double v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void __launch_bounds__(kSelectThreads)
    max_kernel(const float* __restrict__ scores, int n, uint32_t* __restrict__ max_bits) {
  __shared__ float partial[kSelectThreads / kWarp];
  const int h = blockIdx.y;
  const float* s = scores + static_cast<size_t>(h) * n;
  float m = -INFINITY;
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads) m = fmaxf(m, s[j]);
  m = warp_max(m);
  if (threadIdx.x % kWarp == 0) partial[threadIdx.x / kWarp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < kSelectThreads / kWarp; ++i) m = fmaxf(m, partial[i]);
    atomicMax(&max_bits[h], ordered_bits(m));
  }
}

// Per-block histograms in shared memory (mass in double as on the CPU), then added into the head's.
__global__ void __launch_bounds__(kSelectThreads)
    histogram_kernel(const float* __restrict__ scores, int n, const uint32_t* __restrict__ max_bits,
                     double* __restrict__ bin_mass, uint32_t* __restrict__ bin_count) {
  extern __shared__ double shared_mass[];  // kBins + 1 masses, then kBins + 1 counts
  uint32_t* shared_count = reinterpret_cast<uint32_t*>(shared_mass + kBins + 1);
  const int h = blockIdx.y;
  for (int b = threadIdx.x; b <= kBins; b += kSelectThreads) {
    shared_mass[b] = 0;
    shared_count[b] = 0;
  }
  __syncthreads();
  const float* s = scores + static_cast<size_t>(h) * n;
  const float m = from_ordered_bits(max_bits[h]);
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads) {
    const int b = bin_of(m, s[j]);
    atomicAdd(&shared_mass[b], exp(static_cast<double>(s[j]) - static_cast<double>(m)));
    atomicAdd(&shared_count[b], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b <= kBins; b += kSelectThreads) {
    if (shared_count[b] == 0) continue;
    atomicAdd(&bin_mass[static_cast<size_t>(h) * (kBins + 1) + b], shared_mass[b]);
    atomicAdd(&bin_count[static_cast<size_t>(h) * (kBins + 1) + b], shared_count[b]);
  }
}

// One warp per head: the first bin (from the top) at which the cumulative mass would reach
// top_p · total. Each lane owns 128 consecutive bins; lane prefix sums locate the lane, which then
// walks its bins in order as the CPU does.
__global__ void boundary_kernel(const double* __restrict__ bin_mass, const uint32_t* __restrict__ bin_count,
                                float top_p, int32_t* __restrict__ boundary_out, HeadInfo* __restrict__ info) {
  constexpr int kPerLane = kBins / kWarp;
  const int h = blockIdx.x, lane = threadIdx.x;
  const double* mass = bin_mass + static_cast<size_t>(h) * (kBins + 1);
  const uint32_t* count = bin_count + static_cast<size_t>(h) * (kBins + 1);
  double lane_sum = 0;
  for (int b = lane * kPerLane; b < (lane + 1) * kPerLane; ++b) lane_sum += mass[b];
  const double total = warp_sum_double(lane_sum) + mass[kBins];
  const double target = static_cast<double>(top_p) * total;

  double inclusive = lane_sum;
  for (int o = 1; o < kWarp; o <<= 1) {
    const double up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  double cum = inclusive - lane_sum;
  int found = -1;
  for (int b = lane * kPerLane; b < (lane + 1) * kPerLane; ++b) {
    if (cum + mass[b] >= target) {
      found = b;
      break;
    }
    cum += mass[b];
  }
  const unsigned hits = __ballot_sync(0xffffffffu, found >= 0);
  const int src = hits ? __ffs(hits) - 1 : kWarp - 1;
  int boundary = __shfl_sync(0xffffffffu, hits ? found : kBins, src);
  double cum_before = __shfl_sync(0xffffffffu, cum, src);
  if (target <= 0) {  // top_p <= 0: nothing beyond sinks and recent
    boundary = -1;
    cum_before = 0;
  }
  double below = 0;
  for (int b = lane * kPerLane; b < (lane + 1) * kPerLane && b < boundary; ++b) below += count[b];
  below = warp_sum_double(below);
  if (lane == 0) {
    boundary_out[h] = boundary;
    info[h] = HeadInfo{total, target, cum_before, below};
  }
}

// Flags the tokens of bins above the boundary, collects the boundary bin's tokens (as rank keys) and
// the lowest score among the flagged ones (for the margin).
__global__ void __launch_bounds__(kSelectThreads)
    classify_kernel(const float* __restrict__ scores, int n, const uint32_t* __restrict__ max_bits,
                    const int32_t* __restrict__ boundary, uint8_t* __restrict__ flags, int32_t* __restrict__ edge_n,
                    unsigned long long* __restrict__ keys, size_t key_capacity, uint32_t* __restrict__ lowest_bits) {
  const int h = blockIdx.y;
  const float* s = scores + static_cast<size_t>(h) * n;
  uint8_t* f = flags + static_cast<size_t>(h) * n;
  const float m = from_ordered_bits(max_bits[h]);
  const int bnd = boundary[h];
  uint32_t lowest = 0xffffffffu;
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads) {
    const int b = bin_of(m, s[j]);
    f[j] = b < bnd;
    if (b < bnd) lowest = min(lowest, ordered_bits(s[j]));
    if (b == bnd) keys[h * key_capacity + atomicAdd(&edge_n[h], 1)] = rank_key(s[j], j);
  }
  for (int o = kWarp / 2; o > 0; o >>= 1) lowest = min(lowest, __shfl_xor_sync(0xffffffffu, lowest, o));
  if (threadIdx.x % kWarp == 0 && lowest != 0xffffffffu) atomicMin(&lowest_bits[h], lowest);
}

// Bitonic sort of a[0..p) (p a power of two) by the whole block, in shared or global memory.
__device__ void block_sort(unsigned long long* a, int p) {
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int partner = i ^ j;
        if (partner > i) {
          const unsigned long long x = a[i], y = a[partner];
          if ((x > y) == ((i & k) == 0)) {
            a[i] = y;
            a[partner] = x;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Sorts head blockIdx.x's `count` keys; returns where they are (shared memory when they fit, else in
// place, padded to a power of two with keys that sort last).
__device__ unsigned long long* sort_keys(unsigned long long* global_keys, int count, unsigned long long* shared) {
  int p = 1;
  while (p < count) p <<= 1;
  unsigned long long* a = p <= kSharedSort ? shared : global_keys;
  for (int i = threadIdx.x; i < p; i += blockDim.x) a[i] = i < count ? global_keys[i] : ~0ull;
  __syncthreads();
  block_sort(a, p);
  return a;
}

// One block per head: sorts the boundary bin, takes its tokens in rank order while the mass is below
// the target, then applies the margin inside the bin and fixes the margin's cut for the other bins.
__global__ void __launch_bounds__(kSortThreads)
    edge_kernel(const float* __restrict__ scores, int n, const uint32_t* __restrict__ max_bits,
                const HeadInfo* __restrict__ info, const int32_t* __restrict__ edge_n, unsigned long long* keys,
                size_t key_capacity, const uint32_t* __restrict__ lowest_bits, float margin, uint8_t* flags,
                float* __restrict__ cut_out) {
  __shared__ unsigned long long shared[kSharedSort];
  __shared__ int taken_shared;
  __shared__ float cut_shared;
  const int h = blockIdx.x;
  const int count = edge_n[h];
  const float* s = scores + static_cast<size_t>(h) * n;
  uint8_t* f = flags + static_cast<size_t>(h) * n;
  unsigned long long* a = sort_keys(keys + h * key_capacity, count, shared);
  if (threadIdx.x == 0) {
    const double m = from_ordered_bits(max_bits[h]);
    const HeadInfo hi = info[h];
    double cum = hi.cum_before;
    int taken = 0;
    for (; taken < count && cum < hi.target; ++taken) {
      const int pos = static_cast<int>(a[taken] & 0xffffffffu);
      f[pos] = 1;
      cum += exp(static_cast<double>(s[pos]) - m);
    }
    float cut = INFINITY;  // no margin: nothing below the top-p part is added
    if (margin > 0 && (hi.count_below > 0 || taken > 0)) {
      float lowest = hi.count_below > 0 ? from_ordered_bits(lowest_bits[h]) : INFINITY;
      if (taken > 0) lowest = fminf(lowest, s[a[taken - 1] & 0xffffffffu]);
      cut = lowest - margin;
    }
    taken_shared = taken;
    cut_shared = cut;
    cut_out[h] = cut;
  }
  __syncthreads();
  for (int i = taken_shared + threadIdx.x; i < count; i += blockDim.x) {
    const int pos = static_cast<int>(a[i] & 0xffffffffu);
    if (s[pos] >= cut_shared) f[pos] = 1;
  }
}

// The margin below the boundary bin: every lower token scoring at least the cut.
__global__ void __launch_bounds__(kSelectThreads)
    margin_kernel(const float* __restrict__ scores, int n, const uint32_t* __restrict__ max_bits,
                  const int32_t* __restrict__ boundary, const float* __restrict__ cut, uint8_t* __restrict__ flags) {
  const int h = blockIdx.y;
  const float* s = scores + static_cast<size_t>(h) * n;
  const float m = from_ordered_bits(max_bits[h]);
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads)
    if (bin_of(m, s[j]) > boundary[h] && s[j] >= cut[h]) flags[static_cast<size_t>(h) * n + j] = 1;
}

// k_max: collect the flagged tokens' rank keys ...
__global__ void __launch_bounds__(kSelectThreads)
    gather_flagged_kernel(const float* __restrict__ scores, int n, const uint8_t* __restrict__ flags,
                          int32_t* __restrict__ counter, unsigned long long* __restrict__ keys, size_t key_capacity) {
  const int h = blockIdx.y;
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads) {
    const size_t at = static_cast<size_t>(h) * n + j;
    if (flags[at]) keys[h * key_capacity + atomicAdd(&counter[h], 1)] = rank_key(scores[at], j);
  }
}

// ... and unflag all but the first k_max in rank order.
__global__ void __launch_bounds__(kSortThreads)
    cap_kernel(int n, const int32_t* __restrict__ counter, unsigned long long* keys, size_t key_capacity, int k_max,
               uint8_t* flags) {
  __shared__ unsigned long long shared[kSharedSort];
  const int h = blockIdx.x;
  const int count = counter[h];
  if (count <= k_max) return;  // block-uniform
  unsigned long long* a = sort_keys(keys + h * key_capacity, count, shared);
  for (int i = k_max + threadIdx.x; i < count; i += blockDim.x) flags[static_cast<size_t>(h) * n + (a[i] & 0xffffffffu)] = 0;
}

struct Window {  // always-kept positions: [0, sinks) and [recent_from, n)
  int sinks, recent_from;
};

__device__ __forceinline__ bool kept(const uint8_t* f, int j, Window w) {
  return f[j] || j < w.sinks || j >= w.recent_from;
}

__global__ void __launch_bounds__(kSelectThreads)
    count_kernel(int n, const uint8_t* __restrict__ flags, Window w, int32_t* __restrict__ chunk_count) {
  __shared__ int total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  const int h = blockIdx.y;
  const uint8_t* f = flags + static_cast<size_t>(h) * n;
  const int first = blockIdx.x * kChunk;
  const int last = min(n, first + kChunk);
  int c = 0;
  for (int j = first + threadIdx.x; j < last; j += kSelectThreads) c += kept(f, j, w);
  for (int o = kWarp / 2; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
  if (threadIdx.x % kWarp == 0) atomicAdd(&total, c);
  __syncthreads();
  if (threadIdx.x == 0) chunk_count[static_cast<size_t>(h) * gridDim.x + blockIdx.x] = total;
}

// One block: exclusive prefix sum over the (head, chunk) counts in head-major order, so the heads'
// selections come out concatenated; head_offsets[h] is where head h starts, head_offsets[H] the total.
__global__ void __launch_bounds__(kSortThreads)
    offsets_kernel(const int32_t* __restrict__ chunk_count, int n_heads, int chunks, int32_t* __restrict__ chunk_offset,
                   int32_t* __restrict__ head_offsets) {
  using Scan = cub::BlockScan<int, kSortThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ int carry;
  if (threadIdx.x == 0) carry = 0;
  __syncthreads();
  const int total = n_heads * chunks;
  for (int base = 0; base < total; base += kSortThreads) {
    const int i = base + threadIdx.x;
    const int v = i < total ? chunk_count[i] : 0;
    int excl, tile_sum;
    Scan(temp).ExclusiveSum(v, excl, tile_sum);
    if (i < total) {
      chunk_offset[i] = carry + excl;
      if (i % chunks == 0) head_offsets[i / chunks] = carry + excl;
    }
    __syncthreads();
    if (threadIdx.x == 0) carry += tile_sum;
    __syncthreads();
  }
  if (threadIdx.x == 0) head_offsets[n_heads] = carry;
}

// Writes each chunk's kept positions in ascending order with the unnormalised weight float(e^(s - m))
// and adds the chunk's double sum of e^(s - m) to the head's (the CPU's finish()).
__global__ void __launch_bounds__(kSelectThreads)
    write_kernel(const float* __restrict__ scores, int n, const uint32_t* __restrict__ max_bits,
                 const uint8_t* __restrict__ flags, Window w, const int32_t* __restrict__ chunk_offset,
                 int32_t* __restrict__ index, float* __restrict__ weight, double* __restrict__ head_sum) {
  using Scan = cub::BlockScan<int, kSelectThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ double partial[kSelectThreads / kWarp];
  const int h = blockIdx.y;
  const float* s = scores + static_cast<size_t>(h) * n;
  const uint8_t* f = flags + static_cast<size_t>(h) * n;
  const double m = from_ordered_bits(max_bits[h]);
  const int first = blockIdx.x * kChunk + threadIdx.x * kTokensPerThread;  // this thread's 16 positions
  int mine = 0;
  for (int t = 0; t < kTokensPerThread; ++t) mine += first + t < n && kept(f, first + t, w);
  int at;
  Scan(temp).ExclusiveSum(mine, at);
  at += chunk_offset[static_cast<size_t>(h) * gridDim.x + blockIdx.x];
  double sum = 0;
  for (int t = 0; t < kTokensPerThread; ++t) {
    const int j = first + t;
    if (j < n && kept(f, j, w)) {
      const double e = exp(static_cast<double>(s[j]) - m);
      index[at] = j;
      weight[at] = static_cast<float>(e);
      ++at;
      sum += e;
    }
  }
  sum = warp_sum_double(sum);
  if (threadIdx.x % kWarp == 0) partial[threadIdx.x / kWarp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < kSelectThreads / kWarp; ++i) sum += partial[i];
    atomicAdd(&head_sum[h], sum);
  }
}

__global__ void normalize_kernel(const int32_t* __restrict__ head_offsets, const double* __restrict__ head_sum,
                                 float* __restrict__ weight) {
  const int h = blockIdx.x;
  for (int i = head_offsets[h] + threadIdx.x; i < head_offsets[h + 1]; i += blockDim.x)
    weight[i] = static_cast<float>(static_cast<double>(weight[i]) / head_sum[h]);
}

}  // namespace

void Selector::select(const float* scores, int n_heads, int64_t n64, const kv::SelectParams& p, cudaStream_t stream,
                      std::vector<kv::Selection>& out) {
  out.assign(n_heads > 0 ? n_heads : 0, kv::Selection{});
  if (n_heads <= 0 || n64 <= 0) return;
  if (n64 >= INT32_MAX) throw Error("CUDA selection: " + std::to_string(n64) + " tokens exceed int32 positions");
  if (n_heads > 65535) throw Error("CUDA selection: at most 65535 heads per call");
  const int n = static_cast<int>(n64);
  const int H = n_heads;
  const int chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  size_t key_capacity = 1;
  while (key_capacity < static_cast<size_t>(n)) key_capacity <<= 1;
  const size_t cells = static_cast<size_t>(H) * n;

  max_bits_.resize(H);
  lowest_bits_.resize(H);
  bin_mass_.resize(static_cast<size_t>(H) * (kBins + 1));
  bin_count_.resize(static_cast<size_t>(H) * (kBins + 1));
  head_info_.resize(static_cast<size_t>(H) * 4);
  boundary_.resize(H);
  edge_n_.resize(H);
  cut_.resize(H);
  head_sum_.resize(H);
  head_offsets_.resize(H + 1);
  chunk_count_.resize(static_cast<size_t>(H) * chunks);
  chunk_offset_.resize(static_cast<size_t>(H) * chunks);
  flags_.resize(cells);
  keys_.resize(H * key_capacity);
  index_.resize(cells);
  weight_.resize(cells);

  CUDA_CHECK(cudaMemsetAsync(max_bits_.get(), 0, H * sizeof(uint32_t), stream));
  CUDA_CHECK(cudaMemsetAsync(lowest_bits_.get(), 0xff, H * sizeof(uint32_t), stream));
  CUDA_CHECK(cudaMemsetAsync(bin_mass_.get(), 0, static_cast<size_t>(H) * (kBins + 1) * sizeof(double), stream));
  CUDA_CHECK(cudaMemsetAsync(bin_count_.get(), 0, static_cast<size_t>(H) * (kBins + 1) * sizeof(uint32_t), stream));
  CUDA_CHECK(cudaMemsetAsync(edge_n_.get(), 0, H * sizeof(int32_t), stream));
  CUDA_CHECK(cudaMemsetAsync(head_sum_.get(), 0, H * sizeof(double), stream));

  const dim3 grid(chunks, H);
  HeadInfo* info = reinterpret_cast<HeadInfo*>(head_info_.get());
  max_kernel<<<grid, kSelectThreads, 0, stream>>>(scores, n, max_bits_.get());
  CUDA_CHECK_LAUNCH();
  const int hist_shared = (kBins + 1) * (sizeof(double) + sizeof(uint32_t));
  CUDA_CHECK(cudaFuncSetAttribute(histogram_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, hist_shared));
  histogram_kernel<<<grid, kSelectThreads, hist_shared, stream>>>(scores, n, max_bits_.get(), bin_mass_.get(),
                                                                   bin_count_.get());
  CUDA_CHECK_LAUNCH();
  boundary_kernel<<<H, kWarp, 0, stream>>>(bin_mass_.get(), bin_count_.get(), p.top_p, boundary_.get(), info);
  CUDA_CHECK_LAUNCH();
  classify_kernel<<<grid, kSelectThreads, 0, stream>>>(scores, n, max_bits_.get(), boundary_.get(), flags_.get(),
                                                        edge_n_.get(), keys_.get(), key_capacity, lowest_bits_.get());
  CUDA_CHECK_LAUNCH();
  edge_kernel<<<H, kSortThreads, 0, stream>>>(scores, n, max_bits_.get(), info, edge_n_.get(), keys_.get(),
                                              key_capacity, lowest_bits_.get(), p.margin, flags_.get(), cut_.get());
  CUDA_CHECK_LAUNCH();
  if (p.margin > 0) {
    margin_kernel<<<grid, kSelectThreads, 0, stream>>>(scores, n, max_bits_.get(), boundary_.get(), cut_.get(),
                                                        flags_.get());
    CUDA_CHECK_LAUNCH();
  }
  if (p.k_max > 0 && p.k_max < n) {
    CUDA_CHECK(cudaMemsetAsync(edge_n_.get(), 0, H * sizeof(int32_t), stream));
    gather_flagged_kernel<<<grid, kSelectThreads, 0, stream>>>(scores, n, flags_.get(), edge_n_.get(), keys_.get(),
                                                                key_capacity);
    CUDA_CHECK_LAUNCH();
    cap_kernel<<<H, kSortThreads, 0, stream>>>(n, edge_n_.get(), keys_.get(), key_capacity, static_cast<int>(p.k_max),
                                               flags_.get());
    CUDA_CHECK_LAUNCH();
  }
  Window w;
  w.sinks = static_cast<int>(std::min<int64_t>(std::max<int64_t>(p.sinks, 0), n));
  w.recent_from = static_cast<int>(std::max<int64_t>(w.sinks, n - std::max<int64_t>(p.recent, 0)));
  count_kernel<<<grid, kSelectThreads, 0, stream>>>(n, flags_.get(), w, chunk_count_.get());
  CUDA_CHECK_LAUNCH();
  offsets_kernel<<<1, kSortThreads, 0, stream>>>(chunk_count_.get(), H, chunks, chunk_offset_.get(),
                                                 head_offsets_.get());
  CUDA_CHECK_LAUNCH();
  write_kernel<<<grid, kSelectThreads, 0, stream>>>(scores, n, max_bits_.get(), flags_.get(), w, chunk_offset_.get(),
                                                     index_.get(), weight_.get(), head_sum_.get());
  CUDA_CHECK_LAUNCH();
  normalize_kernel<<<H, kSelectThreads, 0, stream>>>(head_offsets_.get(), head_sum_.get(), weight_.get());
  CUDA_CHECK_LAUNCH();

  std::vector<int32_t> offsets(H + 1);
  head_offsets_.download(offsets.data(), offsets.size(), stream);
  const size_t total = static_cast<size_t>(offsets[H]);
  std::vector<int32_t> index(total);
  std::vector<float> weight(total);
  std::vector<double> sums(H), infos(static_cast<size_t>(H) * 4);
  if (total > 0) {
    CUDA_CHECK(cudaMemcpyAsync(index.data(), index_.get(), total * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaMemcpyAsync(weight.data(), weight_.get(), total * sizeof(float), cudaMemcpyDeviceToHost, stream));
  }
  CUDA_CHECK(cudaMemcpyAsync(sums.data(), head_sum_.get(), H * sizeof(double), cudaMemcpyDeviceToHost, stream));
  head_info_.download(infos.data(), infos.size(), stream);
  for (int h = 0; h < H; ++h) {
    kv::Selection& sel = out[h];
    sel.index.assign(index.begin() + offsets[h], index.begin() + offsets[h + 1]);
    sel.weight.assign(weight.begin() + offsets[h], weight.begin() + offsets[h + 1]);
    const double head_total = infos[static_cast<size_t>(h) * 4];
    sel.kept_mass = head_total > 0 ? sums[h] / head_total : 1.0;
  }
}

}  // namespace hcattn::cuda
