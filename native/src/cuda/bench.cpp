// `hcattn-cli bench` on a GPU. First the whole model on the CUDA backend (cuda/llama_cuda.h) with
// random weights made on the device: real forward passes for an 8k prefill, decode after it, prefill
// chunks and decode at the --ctx position over a full f16 KV cache filled with random keys and values,
// with peak GPU and host memory. Then the CUDA ops at the same shapes, each timed with events (median
// of repeats after a warm-up) against the chip's limits, including the HCAttention decode chain at
// --ctx; figures assembled from op timings are labelled as estimates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <sys/resource.h>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "cuda/cli_entry.h"
#include "cuda/device.h"
#include "cuda/kv_cache_cuda.h"
#include "cuda/llama_cuda.h"
#include "cuda/op_checks.h"
#include "cuda/ops.h"
#include "kv/selection.h"
#include "model/hparams.h"
#include "quant/types.h"

namespace hcattn::cuda {

namespace {

using quant::GgmlType;

// Vendor figures for the H200 SXM (compare like with like on other cards).
constexpr double kPeakBandwidthGBs = 4800;
constexpr double kPeakF16TFlops = 790;

struct ModelShape {
  const char* name;
  int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
};

constexpr ModelShape kShapes[] = {
    {"llama3-8b", 32, 4096, 32, 8, 128, 14336, 128256},
    {"llama32-1b", 16, 2048, 32, 8, 64, 8192, 128256},
};

struct Options {
  const ModelShape* shape = &kShapes[0];
  GgmlType qtype = GgmlType::Q4_0;
  int64_t ctx = 131072;
  std::string kv = "12.5%";
  bool quick = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shape") {
      const std::string v = value();
      o.shape = nullptr;
      for (const ModelShape& s : kShapes)
        if (v == s.name) o.shape = &s;
      if (!o.shape) throw Error("--shape must be llama3-8b or llama32-1b, got '" + v + "'");
    } else if (a == "--qtype") {
      const std::string v = value();
      if (v == "q4_0") o.qtype = GgmlType::Q4_0;
      else if (v == "q8_0") o.qtype = GgmlType::Q8_0;
      else if (v == "q4_k") o.qtype = GgmlType::Q4_K;
      else if (v == "q6_k") o.qtype = GgmlType::Q6_K;
      else if (v == "f16") o.qtype = GgmlType::F16;
      else throw Error("--qtype must be q4_0, q8_0, q4_k, q6_k or f16, got '" + v + "'");
    } else if (a == "--ctx") {
      o.ctx = std::strtoll(value().c_str(), nullptr, 10);
      if (o.ctx < 1024) throw Error("--ctx must be at least 1024");
    } else if (a == "--kv") {
      o.kv = value();
      if (o.kv != "50%" && o.kv != "25%" && o.kv != "12.5%") throw Error("--kv must be 50%, 25% or 12.5%");
    } else if (a == "--random") {
      // Weights are always random here; accepted for symmetry with the CPU bench.
    } else if (a == "--quick") {
      o.quick = true;
    } else {
      throw Error("unknown option '" + a + "'");
    }
  }
  return o;
}

// Median over `reps` timed runs of fn on `stream` after one warm-up run.
double time_ms(cudaStream_t stream, int reps, const std::function<void()>& fn) {
  EventTimer timer;
  fn();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    timer.start(stream);
    fn();
    t.push_back(timer.stop(stream));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double host_ms(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double gib(double bytes) { return bytes / (1024.0 * 1024 * 1024); }

size_t gpu_used_bytes() {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return total_b - free_b;
}

struct LayerWeights {
  std::vector<DeviceBuffer<uint8_t>> buffers;
  std::vector<DeviceWeight> mats;  // wq wk wv wo gate up down
};

DeviceWeight make_weight(std::vector<DeviceBuffer<uint8_t>>& store, GgmlType t, int64_t rows, int64_t cols, uint64_t seed,
                         cudaStream_t stream) {
  const size_t row_bytes = quant::row_size(t, cols);
  store.emplace_back(row_bytes * rows);
  DeviceWeight w{t, store.back().get(), rows, cols, row_bytes};
  fill_random_weight(w, seed, stream);
  return w;
}

double host_peak_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB
}

model::Hparams hparams_of(const ModelShape& m) {
  model::Hparams h;
  h.n_vocab = m.n_vocab;
  h.n_ctx_train = 131072;
  h.n_embd = m.n_embd;
  h.n_layer = m.n_layer;
  h.n_head = m.n_head;
  h.n_head_kv = m.n_head_kv;
  h.head_dim = m.head_dim;
  h.n_ff = m.n_ff;
  h.kq_scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
  h.n_rot = m.head_dim;
  h.rope_freq_base = 500000.0f;
  h.rope_scaling = model::RopeScaling::None;
  h.rope_n_ctx_orig = h.n_ctx_train;
  return h;
}

double seconds_of(const std::function<void()>& fn) {
  const auto a = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

// The whole model through CudaLlama::forward (each call ends with the logits on the host, so host
// clocks time it completely).
void bench_model(const Options& o) {
  const ModelShape& m = *o.shape;
  const model::Hparams h = hparams_of(m);
  cpu::ThreadPool pool(0);
  const size_t gpu_before = gpu_used_bytes();
  CudaLlama llama(h, o.qtype, 1, pool);
  std::printf("model  %s %s random weights on the GPU: %.2f GiB\n", m.name, quant::type_name(o.qtype),
              gib(static_cast<double>(llama.weight_bytes())));
  std::mt19937 rng(5);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t& id : t) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(m.n_vocab));
    return t;
  };
  std::vector<float> logits(m.n_vocab);
  const int decode_steps = o.quick ? 4 : 16;

  {  // 8k prompt from an empty cache, in chunks of 2048, then decode steps after it.
    const int prompt = 8192, chunk = 2048;
    DeviceKvCache kv(llama.kv_shape(), prompt + decode_steps, model::KvStorage::F16);
    const std::vector<int32_t> ids = random_tokens(prompt + decode_steps);
    llama.forward(ids.data(), 16, 0, kv, nullptr, false, logits.data());  // warm-up (module load, workspace)
    const double prefill_s = seconds_of([&] {
      for (int p = 0; p < prompt; p += chunk) llama.forward(ids.data() + p, chunk, p, kv, nullptr, false, logits.data());
    });
    const double decode_s = seconds_of([&] {
      for (int i = 0; i < decode_steps; ++i) llama.forward(&ids[prompt + i], 1, prompt + i, kv, nullptr, false, logits.data());
    });
    std::printf("model  prefill %d tokens (chunks of %d, full f16 KV on the GPU): %.2f s = %.0f tok/s\n", prompt, chunk,
                prefill_s, prompt / prefill_s);
    std::printf("model  decode at %d: %.2f ms/token = %.1f tok/s\n", prompt, 1000 * decode_s / decode_steps,
                decode_steps / decode_s);
  }

  // At --ctx: a full f16 cache of ctx positions (random keys and values), one prefill chunk at the
  // start and one at the end (attention cost grows linearly with the position, so their mean times
  // the number of chunks is the whole prefill), and decode steps at the end.
  const size_t kv_bytes = static_cast<size_t>(o.ctx) * m.n_layer * m.n_head_kv * m.head_dim * 2 * 2;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (kv_bytes + (size_t{4} << 30) > free_b) {
    std::printf("model  ctx %lld: a full f16 KV cache needs %.1f GiB, %.1f GiB free: whole-model figures at this context "
                "come from the op estimates below\n",
                static_cast<long long>(o.ctx), gib(static_cast<double>(kv_bytes)), gib(static_cast<double>(free_b)));
  } else {
    const int ctx = static_cast<int>(o.ctx), chunk = 1024;
    DeviceKvCache kv(llama.kv_shape(), ctx, model::KvStorage::F16);
    kv.fill_random(ctx, 77, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<int32_t> ids = random_tokens(chunk);
    const double first_s = seconds_of([&] { llama.forward(ids.data(), chunk, 0, kv, nullptr, false, logits.data()); });
    const int last_pos = ctx - decode_steps - chunk;
    const double last_s = seconds_of([&] { llama.forward(ids.data(), chunk, last_pos, kv, nullptr, false, logits.data()); });
    const double prefill_s = (first_s + last_s) / 2 * (static_cast<double>(ctx) / chunk);
    const double decode_s = seconds_of([&] {
      for (int i = 0; i < decode_steps; ++i)
        llama.forward(&ids[i], 1, ctx - decode_steps + i, kv, nullptr, false, logits.data());
    });
    std::printf("model  prefill chunk of %d at position 0: %.3f s, at %d: %.3f s -> prefill %d tokens ~ %.1f s = %.0f tok/s\n",
                chunk, first_s, last_pos, last_s, ctx, prefill_s, ctx / prefill_s);
    std::printf("model  decode at %d (full f16 KV, %.1f GiB): %.2f ms/token = %.1f tok/s\n", ctx,
                gib(static_cast<double>(kv_bytes)), 1000 * decode_s / decode_steps, decode_steps / decode_s);
    std::printf("memory model at ctx %d: GPU %.2f GiB in use (weights + KV + work space), host peak RSS %.2f GiB\n", ctx,
                gib(static_cast<double>(gpu_used_bytes() - gpu_before)), host_peak_gib());
  }
}

int run(const Options& o) {
  const ModelShape& m = *o.shape;
  Stream stream;
  const cudaStream_t s = stream.get();
  const int reps = o.quick ? 3 : 7;
  const size_t used_before = gpu_used_bytes();
  std::printf("bench %s %s, ctx %lld, kv %s\n", m.name, quant::type_name(o.qtype), static_cast<long long>(o.ctx),
              o.kv.c_str());

  // --- weights: every layer's own matrices, so decode streams the whole model as it would ---
  std::vector<LayerWeights> layers(m.n_layer);
  double weight_bytes = 0;
  uint64_t seed = 1;
  for (LayerWeights& L : layers) {
    const int64_t q_rows = static_cast<int64_t>(m.n_head) * m.head_dim, kv_rows = static_cast<int64_t>(m.n_head_kv) * m.head_dim;
    const int64_t shapes[7][2] = {{q_rows, m.n_embd}, {kv_rows, m.n_embd}, {kv_rows, m.n_embd}, {m.n_embd, q_rows},
                                  {m.n_ff, m.n_embd},  {m.n_ff, m.n_embd},  {m.n_embd, m.n_ff}};
    for (const auto& sh : shapes) {
      L.mats.push_back(make_weight(L.buffers, o.qtype, sh[0], sh[1], seed++, s));
      weight_bytes += static_cast<double>(L.mats.back().row_bytes) * sh[0];
    }
  }
  std::vector<DeviceBuffer<uint8_t>> out_store;
  const DeviceWeight output = make_weight(out_store, o.qtype, m.n_vocab, m.n_embd, seed++, s);
  weight_bytes += static_cast<double>(output.row_bytes) * m.n_vocab;

  // x: (tokens, widest input row); y: (tokens, widest layer output) or one token of logits.
  const int prefill_tokens = o.quick ? 512 : 2048;
  const size_t widest = static_cast<size_t>(std::max(m.n_ff, m.n_embd));
  DeviceBuffer<float> x(prefill_tokens * widest), y(std::max(prefill_tokens * widest, static_cast<size_t>(m.n_vocab)));
  {
    std::vector<float> hx(prefill_tokens * widest);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& v : hx) v = u(rng);
    x.upload(hx.data(), hx.size(), s);
  }

  // Decode: one token through every weight matrix (GEMV).
  const double decode_ms = time_ms(s, reps, [&] {
    for (const LayerWeights& L : layers)
      for (const DeviceWeight& w : L.mats) matmul_gemv(w, x.get(), 1, y.get(), s);
    matmul_gemv(output, x.get(), 1, y.get(), s);
  });
  const double gbs = weight_bytes / (decode_ms * 1e-3) / 1e9;
  std::printf("gemv   %-5s all weights %.2f GiB: %8.3f ms/token  %7.0f GB/s  (%.0f%% of %.0f GB/s HBM)\n",
              quant::type_name(o.qtype), gib(weight_bytes), decode_ms, gbs, 100 * gbs / kPeakBandwidthGBs, kPeakBandwidthGBs);

  // Prefill: one layer's matrices on a chunk of tokens (GEMM, tensor cores).
  double layer_flops = 0;
  for (const DeviceWeight& w : layers[0].mats) layer_flops += 2.0 * w.rows * w.cols * prefill_tokens;
  const double gemm_ms = time_ms(s, reps, [&] {
    for (const DeviceWeight& w : layers[0].mats) matmul_gemm(w, x.get(), prefill_tokens, y.get(), s);
  });
  const double tflops = layer_flops / (gemm_ms * 1e-3) / 1e12;
  std::printf("gemm   %-5s one layer, %d tokens: %8.3f ms  %7.1f TFLOP/s  (%.0f%% of %.0f f16/bf16 dense)\n",
              quant::type_name(o.qtype), prefill_tokens, gemm_ms, tflops, 100 * tflops / kPeakF16TFlops, kPeakF16TFlops);
  const double matmul_ms_per_token = gemm_ms * m.n_layer / prefill_tokens;

  // Chunk attention (exact, causal), as prefill runs it per chunk.
  auto attention_ms = [&](int n_q, int n_k) {
    const size_t q_elems = static_cast<size_t>(n_q) * m.n_head * m.head_dim;
    const size_t kv_elems = static_cast<size_t>(n_k) * m.n_head_kv * m.head_dim;
    DeviceBuffer<float> q(q_elems), out(q_elems);
    DeviceBuffer<uint16_t> k(kv_elems), v(kv_elems);
    fill_random_weight(DeviceWeight{GgmlType::F16, k.get(), static_cast<int64_t>(kv_elems / 256), 256, 512}, 11, s);
    fill_random_weight(DeviceWeight{GgmlType::F16, v.get(), static_cast<int64_t>(kv_elems / 256), 256, 512}, 12, s);
    CUDA_CHECK(cudaMemsetAsync(q.get(), 0, q_elems * sizeof(float), s));
    CUDA_CHECK(cudaMemcpyAsync(q.get(), x.get(), std::min(q_elems, x.size()) * sizeof(float), cudaMemcpyDeviceToDevice, s));
    const AttentionShape shape{n_q, n_k, m.n_head, m.n_head_kv, m.head_dim, 1.0f / std::sqrt(static_cast<float>(m.head_dim))};
    const double ms = time_ms(s, o.quick ? 1 : 3, [&] { attention_prefill(q.get(), k.get(), v.get(), out.get(), shape, s); });
    const double pairs = static_cast<double>(n_q) * (n_k - n_q) + 0.5 * n_q * (n_q + 1.0);
    const double tf = 4.0 * m.head_dim * m.n_head * pairs / (ms * 1e-3) / 1e12;
    std::printf("attn   %6d queries over %7d keys (causal): %9.3f ms/layer  %6.1f TFLOP/s\n", n_q, n_k, ms, tf);
    return ms;
  };
  const int chunk = 4096;
  const double attn_chunk_ms = attention_ms(chunk, chunk);
  attention_ms(8192, 8192);
  // The shape of a prefill chunk late in a 128k prompt (as SDPA is timed in bench/gpu/run.sh).
  if (!o.quick && o.ctx >= 131072) attention_ms(1024, 131072);

  // HCAttention decode step at ctx tokens: LUT, code scores, top-p selection (indices and weights to
  // the host), value sums three ways.
  double hc_layer_ms = 0;
  double codes_bytes_all_layers = 0;
  if (o.kv != "50%") {
    const int g = o.kv == "25%" ? m.head_dim / 2 : m.head_dim / 4;
    const CodebookShape cb{m.head_dim, g, 256};
    const int64_t n = o.ctx;
    const int per_kv = m.n_head / m.n_head_kv;
    DeviceBuffer<uint16_t> codes(static_cast<size_t>(n) * m.n_head_kv * g);
    for (int kvh = 0; kvh < m.n_head_kv; ++kvh)
      fill_random_codes(codes.get() + static_cast<size_t>(kvh) * n * g, n, cb, 100 + kvh, s);
    codes_bytes_all_layers = static_cast<double>(n) * m.n_head_kv * g * 2 * m.n_layer;
    DeviceBuffer<float> centroids(static_cast<size_t>(g) * 256 * (m.head_dim / g)), q(static_cast<size_t>(m.n_head) * m.head_dim);
    DeviceBuffer<float> lut(static_cast<size_t>(m.n_head) * g * 256), scores(static_cast<size_t>(m.n_head) * n);
    {
      // Query and centroid scales give approximate logits with a spread of about 4.5 nats, so that the
      // top-p set is a small share of the context as in real attention.
      std::mt19937 rng(3);
      std::uniform_real_distribution<float> cu(-1, 1), qu(-1.2f, 1.2f);
      std::vector<float> hc(centroids.size()), hq(q.size());
      for (float& v : hc) v = cu(rng);
      for (float& v : hq) v = qu(rng);
      centroids.upload(hc.data(), hc.size(), s);
      q.upload(hq.data(), hq.size(), s);
    }
    const double score_ms = time_ms(s, reps, [&] {
      build_lut(q.get(), centroids.get(), m.n_head, cb, lut.get(), s);
      for (int kvh = 0; kvh < m.n_head_kv; ++kvh)
        score_codes(lut.get() + static_cast<size_t>(kvh) * per_kv * g * 256, codes.get() + static_cast<size_t>(kvh) * n * g, n,
                    per_kv, cb, scores.get() + static_cast<size_t>(kvh) * per_kv * n, s);
    });
    const double codes_gb = static_cast<double>(n) * m.n_head_kv * g * 2 / 1e9;
    std::printf("hc     lut+scores, %lld tokens, g=%d: %8.3f ms/layer  (codes %.2f GB: %.0f GB/s)\n",
                static_cast<long long>(n), g, score_ms, codes_gb, codes_gb / (score_ms * 1e-3));

    Selector selector;
    std::vector<kv::Selection> sel;
    kv::SelectParams params;
    const double select_ms = host_ms(reps, [&] { selector.select(scores.get(), m.n_head, n, params, s, sel); });
    size_t selected = 0;
    for (const kv::Selection& h : sel) selected += h.index.size();
    std::printf("hc     top-p select %d heads (to host): %8.3f ms/layer  (%.0f tokens/head selected)\n", m.n_head,
                select_ms, static_cast<double>(selected) / m.n_head);

    // Values: (token, kv head, dim) f16, in device memory and in mapped pinned host memory.
    const size_t value_elems = static_cast<size_t>(n) * m.n_head_kv * m.head_dim;
    PinnedBuffer<uint16_t> host_values(value_elems);
    std::fill(host_values.get(), host_values.get() + value_elems, quant::fp32_to_fp16(0.5f));
    DeviceBuffer<uint16_t> dev_values(value_elems);
    CUDA_CHECK(cudaMemcpyAsync(dev_values.get(), host_values.get(), value_elems * 2, cudaMemcpyHostToDevice, s));
    DeviceBuffer<float> ctx_out(static_cast<size_t>(m.n_head) * m.head_dim);
    const int64_t token_stride = static_cast<int64_t>(m.n_head_kv) * m.head_dim;
    ValueLayout dev_layout{dev_values.get(), token_stride, m.head_dim, per_kv, m.head_dim};
    ValueLayout host_layout = dev_layout;
    host_layout.values = host_values.device_ptr();
    const double vdev_ms = time_ms(s, reps, [&] {
      sum_selected_values(selector.device_index(), selector.device_weight(), selector.device_offsets(), m.n_head, dev_layout,
                          ctx_out.get(), s);
    });
    const double vhost_ms = time_ms(s, reps, [&] {
      sum_selected_values(selector.device_index(), selector.device_weight(), selector.device_offsets(), m.n_head, host_layout,
                          ctx_out.get(), s);
    });
    cpu::ThreadPool pool(0);
    std::vector<float> cpu_out(static_cast<size_t>(m.n_head) * m.head_dim);
    const double vcpu_ms = host_ms(reps, [&] {
      pool.parallel_for(m.n_head, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t h = b; h < e; ++h)
          kv::attend_values_f16(sel[h], host_values.get() + (h / per_kv) * m.head_dim, token_stride, m.head_dim,
                                cpu_out.data() + h * m.head_dim);
      });
    });
    std::printf("hc     value sums: GPU from HBM %.3f ms, GPU from pinned host %.3f ms, CPU threads (%d) %.3f ms per layer\n",
                vdev_ms, vhost_ms, pool.size(), vcpu_ms);
    hc_layer_ms = score_ms + select_ms + std::min(vhost_ms, vcpu_ms);
    std::printf("host   values per layer %.2f GiB pinned (all layers: %.1f GiB)\n", gib(value_elems * 2.0),
                gib(value_elems * 2.0 * m.n_layer));
  }

  const size_t peak = gpu_used_bytes() - used_before;
  std::printf("memory GPU in use by this bench %.2f GiB; at ctx %lld the KV codes of all layers take %.2f GiB + weights %.2f GiB\n",
              gib(static_cast<double>(peak)), static_cast<long long>(o.ctx), gib(codes_bytes_all_layers), gib(weight_bytes));
  const double decode_total_ms = decode_ms + m.n_layer * hc_layer_ms;
  std::printf("estimate decode at ctx %lld: %.1f ms/token = %.1f tok/s (weights %.2f ms + %d layers x hc %.3f ms)\n",
              static_cast<long long>(o.ctx), decode_total_ms, 1000.0 / decode_total_ms, decode_ms, m.n_layer, hc_layer_ms);
  for (int64_t p : {int64_t{8192}, int64_t{131072}, int64_t{1} << 20}) {
    const double ms = p * matmul_ms_per_token + static_cast<double>(p) / chunk * attn_chunk_ms * m.n_layer;
    std::printf("estimate prefill %7lld tokens (chunks of %d, exact inside the chunk): %.1f s = %.0f tok/s\n",
                static_cast<long long>(p), chunk, ms / 1000, p / (ms / 1000));
  }
  return 0;
}

}  // namespace

int cuda_bench(int argc, char** argv) {
  std::string reason;
  if (!device_usable(&reason)) {
    std::printf("cuda bench: skipped: %s\n", reason.c_str());
    return 77;
  }
  try {
    const Options o = parse(argc, argv);
    bench_model(o);
    return run(o);
  } catch (const std::exception& e) {
    std::printf("cuda bench: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace hcattn::cuda
