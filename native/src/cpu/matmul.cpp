// The matmul driver: checks the weight view, converts the activations of all tokens to the weight
// type's dot format once (FORMATS.md §2.4), then splits the weight rows across the pool's threads and
// runs the best kernel the CPU has. Also the double-precision reference the kernels are tested against.
#include "cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/matmul_kernels.h"
#include "quant/activation.h"

namespace hcattn::cpu {

using quant::GgmlType;

namespace {

// Rows are handed out in chunks that are a multiple of 16: the AVX-512 prefill kernels work on panels
// of 16 rows, and it keeps two threads from writing the same cache line of y in the decode case.
constexpr int64_t kRowGrain = 16;
// Chunks per thread, of about equal weight bytes. Threads take the next chunk from a shared counter,
// so a thread that the OS deschedules (a busy machine) delays the dispatch by one small chunk, not by
// its whole share, and the threads of a decode step finish within a chunk of each other: while the
// last chunk runs the other threads wait, so the chunks are small (24 per thread: a 66 MB gate/up
// dispatch of the 8B model leaves about 1.4 MB, ~0.1 ms of streaming, to one thread at the end), and
// one more chunk costs only an atomic increment and a fresh prefetch stream.
constexpr int64_t kChunksPerThread = 24;

void check_weight(const WeightView& w, const char* who) {
  const std::string where = std::string(who) + ": ";
  if (!quant::type_supported(w.type)) {
    throw Error(where + "weight type " + quant::type_name(w.type) +
                " is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K are); requantize the model");
  }
  if (!w.data || w.rows <= 0 || w.cols <= 0) {
    throw Error(where + "empty weight view (" + std::to_string(w.rows) + " x " + std::to_string(w.cols) + ")");
  }
  const size_t need = quant::row_size(w.type, w.cols);  // throws when cols is not a multiple of the block
  if (w.row_bytes < need) {
    throw Error(where + "row stride " + std::to_string(w.row_bytes) + " bytes is smaller than a " +
                quant::type_name(w.type) + " row of " + std::to_string(w.cols) + " elements (" +
                std::to_string(need) + " bytes)");
  }
}

GgmlType dot_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F16: return GgmlType::F16;
    case GgmlType::BF16: return GgmlType::BF16;
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: return GgmlType::Q8_0;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: return GgmlType::F32;
  }
}

// Per-thread storage for the converted activations, reused across calls so that a decode step does not
// allocate. One slot per distinct weight type of a matmul_group.
struct ActsStorage {
  std::vector<uint8_t> rows;
  std::vector<float> block_scale;
  std::vector<int32_t> block_bias;
};
constexpr int kMaxProducts = 3;

// Converts the activations of all tokens to the dot format of weight type `type` (the Q8_0 block bias
// depends on the weight type, not only on the dot type).
PackedActs pack_activations(SimdLevel level, GgmlType type, int64_t cols, const float* x, int64_t n_tokens,
                            ThreadPool& pool, ActsStorage& st) {
  PackedActs a;
  a.dot_type = dot_type_of(type);
  a.n_tokens = n_tokens;
  a.cols = cols;
  if (a.dot_type == GgmlType::F32) {
    a.rows = reinterpret_cast<const uint8_t*>(x);
    a.row_bytes = static_cast<size_t>(cols) * sizeof(float);
    return a;
  }
  a.row_bytes = quant::row_size(a.dot_type, cols);
  st.rows.resize(a.row_bytes * n_tokens);
  const int64_t blocks = cols / quant::QK;
  if (a.dot_type == GgmlType::Q8_0) {
    st.block_scale.resize(blocks * n_tokens);
    st.block_bias.resize(blocks * n_tokens);
  }
  const quant::ActivationKernels& k = quant::activation_kernels(level);
  const int offset = legacy_code_offset(type);
  auto convert = [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t) {
      uint8_t* dst = st.rows.data() + t * a.row_bytes;
      const float* src = x + t * cols;
      switch (a.dot_type) {
        case GgmlType::F16: k.f16(src, reinterpret_cast<uint16_t*>(dst), cols); break;
        case GgmlType::BF16: k.bf16(src, reinterpret_cast<uint16_t*>(dst), cols); break;
        case GgmlType::Q8_K: k.q8_k(src, reinterpret_cast<quant::BlockQ8_K*>(dst), cols); break;
        default: {
          auto* blk = reinterpret_cast<quant::BlockQ8_0*>(dst);
          k.q8_0(src, blk, cols);
          for (int64_t b = 0; b < blocks; ++b) {
            int sum = 0;
            for (int j = 0; j < quant::QK; ++j) sum += blk[b].qs[j];
            st.block_scale[t * blocks + b] = quant::fp16_to_fp32(blk[b].d);
            st.block_bias[t * blocks + b] = -offset * sum;
          }
        }
      }
    }
  };
  pool.parallel_for(n_tokens, 1, convert);
  a.rows = st.rows.data();
  if (a.dot_type == GgmlType::Q8_0) {
    a.block_scale = st.block_scale.data();
    a.block_bias = st.block_bias.data();
  }
  return a;
}

RowsKernel pick_kernel(SimdLevel level, GgmlType t) {
  RowsKernel k = nullptr;
#if defined(__x86_64__) || defined(_M_X64)
  if (level == SimdLevel::Avx512) k = rows_kernel_avx512(t);
  if (!k && static_cast<int>(level) >= static_cast<int>(SimdLevel::Avx2)) k = rows_kernel_avx2(t);
#endif
  if (!k) k = rows_kernel_scalar(t);
  return k;
}

}  // namespace

namespace {

// One weight product of a dispatch, with its kernel and converted activations.
struct Product {
  const WeightView* w;
  float* y;
  RowsKernel kernel;
  PackedActs acts;
};

// Rows [r0, r1) of product `product` (or of both products, for the SwiGLU pair).
struct Chunk {
  int product;
  int64_t r0, r1;
};

void check_products(const Product* ps, int n, const char* who) {
  for (int i = 0; i < n; ++i) {
    check_weight(*ps[i].w, who);
    if (ps[i].w->cols != ps[0].w->cols) {
      throw Error(std::string(who) + ": products of one input need the same column count (" +
                  std::to_string(ps[0].w->cols) + " and " + std::to_string(ps[i].w->cols) + ")");
    }
  }
}

// Converts x once per distinct weight type and picks each product's kernel.
void prepare(SimdLevel level, Product* ps, int n, const float* x, int64_t n_tokens, ThreadPool& pool) {
  if (static_cast<int>(level) > static_cast<int>(simd_level())) level = simd_level();
  thread_local ActsStorage storage[kMaxProducts];
  for (int i = 0; i < n; ++i) {
    ps[i].kernel = pick_kernel(level, ps[i].w->type);
    int same = 0;
    while (same < i && ps[same].w->type != ps[i].w->type) ++same;
    ps[i].acts = same < i ? ps[same].acts
                          : pack_activations(level, ps[i].w->type, ps[i].w->cols, x, n_tokens, pool, storage[i]);
  }
}

// Splits `rows` rows of `row_bytes` each into chunks of about `chunk_bytes`, whole grains of rows.
void add_chunks(int product, int64_t rows, size_t row_bytes, double chunk_bytes, std::vector<Chunk>& chunks) {
  const int64_t grains = (rows + kRowGrain - 1) / kRowGrain;
  const int64_t n = std::clamp<int64_t>(static_cast<int64_t>(rows * static_cast<double>(row_bytes) / chunk_bytes + 0.5), 1, grains);
  for (int64_t c = 0; c < n; ++c) {
    const int64_t r0 = std::min(rows, grains * c / n * kRowGrain);
    const int64_t r1 = std::min(rows, grains * (c + 1) / n * kRowGrain);
    if (r1 > r0) chunks.push_back({product, r0, r1});
  }
}

// Runs body(chunk) for every chunk, the threads taking chunks in order from a shared counter.
template <class Body>
void run_chunks(const std::vector<Chunk>& chunks, ThreadPool& pool, const Body& body) {
  const int64_t n = static_cast<int64_t>(chunks.size());
  std::atomic<int64_t> next{0};
  pool.parallel_for(std::min<int64_t>(pool.size(), n), 1, [&](int64_t, int64_t, int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < n; c = next.fetch_add(1, std::memory_order_relaxed)) {
      body(chunks[c]);
    }
  });
}

double target_chunk_bytes(double total_bytes, ThreadPool& pool) {
  return total_bytes / static_cast<double>(pool.size() * kChunksPerThread);
}

}  // namespace

void matmul_group_at_level(SimdLevel level, const MatmulOut* outs, int n_outs, const float* x, int64_t n_tokens,
                           ThreadPool& pool) {
  if (n_outs < 1 || n_outs > kMaxProducts) {
    throw Error("matmul_group: " + std::to_string(n_outs) + " products (1 to " + std::to_string(kMaxProducts) + " are supported)");
  }
  Product ps[kMaxProducts];
  for (int i = 0; i < n_outs; ++i) ps[i] = {outs[i].w, outs[i].y, nullptr, {}};
  check_products(ps, n_outs, "matmul");
  if (n_tokens <= 0) return;
  prepare(level, ps, n_outs, x, n_tokens, pool);
  double total = 0;
  for (int i = 0; i < n_outs; ++i) total += static_cast<double>(ps[i].w->rows) * ps[i].w->row_bytes;
  thread_local std::vector<Chunk> chunks;
  chunks.clear();
  for (int i = 0; i < n_outs; ++i) add_chunks(i, ps[i].w->rows, ps[i].w->row_bytes, target_chunk_bytes(total, pool), chunks);
  run_chunks(chunks, pool, [&](const Chunk& c) {
    const Product& p = ps[c.product];
    p.kernel(*p.w, p.acts, c.r0, c.r1, p.y);
  });
}

void matmul_at_level(SimdLevel level, const WeightView& w, const float* x, int64_t n_tokens, float* y,
                     ThreadPool& pool) {
  const MatmulOut out{&w, y};
  matmul_group_at_level(level, &out, 1, x, n_tokens, pool);
}

void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  matmul_at_level(simd_level(), w, x, n_tokens, y, pool);
}

void matmul_group(const MatmulOut* outs, int n_outs, const float* x, int64_t n_tokens, ThreadPool& pool) {
  matmul_group_at_level(simd_level(), outs, n_outs, x, n_tokens, pool);
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void matmul_swiglu(const WeightView& w_gate, const WeightView& w_up, const float* x, int64_t n_tokens, float* gate,
                   float* up, ThreadPool& pool) {
  Product ps[2] = {{&w_gate, gate, nullptr, {}}, {&w_up, up, nullptr, {}}};
  check_products(ps, 2, "matmul_swiglu");
  if (w_gate.rows != w_up.rows) {
    throw Error("matmul_swiglu: gate and up weights differ in rows (" + std::to_string(w_gate.rows) + " and " +
                std::to_string(w_up.rows) + ")");
  }
  if (n_tokens <= 0) return;
  prepare(simd_level(), ps, 2, x, n_tokens, pool);
  const int64_t rows = w_gate.rows;
  const size_t pair_bytes = w_gate.row_bytes + w_up.row_bytes;
  thread_local std::vector<Chunk> chunks;
  chunks.clear();
  add_chunks(0, rows, pair_bytes, target_chunk_bytes(static_cast<double>(rows) * pair_bytes, pool), chunks);
  // Each chunk's rows of both products, then their SwiGLU while they are still in the cache.
  run_chunks(chunks, pool, [&](const Chunk& c) {
    for (const Product& p : ps) p.kernel(*p.w, p.acts, c.r0, c.r1, p.y);
    for (int64_t t = 0; t < n_tokens; ++t) swiglu(gate + t * rows + c.r0, up + t * rows + c.r0, c.r1 - c.r0);
  });
}

void matmul_reference(const WeightView& w, const float* x, int64_t n_tokens, float* y) {
  check_weight(w, "matmul_reference");
  const int64_t cols = w.cols;
  // Each token's activations as the kernels see them: rounded to the dot type, then widened to float.
  std::vector<float> acts(static_cast<size_t>(cols * n_tokens));
  const GgmlType dot = dot_type_of(w.type);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* src = x + t * cols;
    float* dst = acts.data() + t * cols;
    switch (dot) {
      case GgmlType::F16:
        for (int64_t i = 0; i < cols; ++i) dst[i] = quant::fp16_to_fp32(quant::fp32_to_fp16(src[i]));
        break;
      case GgmlType::BF16:
        for (int64_t i = 0; i < cols; ++i) dst[i] = quant::bf16_to_fp32(quant::fp32_to_bf16(src[i]));
        break;
      case GgmlType::Q8_0: {
        std::vector<quant::BlockQ8_0> q(cols / quant::QK);
        quant::quantize_row_q8_0(src, q.data(), cols);
        quant::dequantize_row(GgmlType::Q8_0, q.data(), dst, cols);
        break;
      }
      case GgmlType::Q8_K: {
        std::vector<quant::BlockQ8_K> q(cols / quant::QK_K);
        quant::quantize_row_q8_k(src, q.data(), cols);
        for (int64_t i = 0; i < cols; ++i) dst[i] = q[i / quant::QK_K].d * q[i / quant::QK_K].qs[i % quant::QK_K];
        break;
      }
      default:
        std::copy(src, src + cols, dst);
    }
  }
  std::vector<float> wrow(static_cast<size_t>(cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    quant::dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes, wrow.data(), cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* a = acts.data() + t * cols;
      double sum = 0.0;
      for (int64_t i = 0; i < cols; ++i) sum += static_cast<double>(wrow[i]) * a[i];
      y[t * w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace hcattn::cpu
