#include "cuda/op_checks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "cpu/matmul.h"
#include "cuda/device.h"
#include "cuda/ops.h"
#include "kv/codebook.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "model/rope.h"
#include "quant/random_weights.h"

namespace hcattn::cuda {

namespace {

using quant::GgmlType;

std::vector<float> random_floats(size_t n, float lo, float hi, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Random weights (quant/random_weights.h), seeded from the check's generator.
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, std::mt19937_64& rng) {
  return quant::random_weights(t, rows, cols, rng());
}

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

CheckResult finish(std::string op, std::string shape, double error, double bound, std::string detail) {
  CheckResult r;
  r.op = std::move(op);
  r.shape = std::move(shape);
  r.error = error;
  r.bound = bound;
  r.passed = error <= bound;  // NaN fails
  if (!r.passed) r.detail = std::move(detail);
  return r;
}

// Largest |got - want| / scale over all elements, and the first element where it is the largest.
struct WorstError {
  double value = 0;
  std::string where;
  void add(double got, double want, double scale, size_t i) {
    const double e = std::fabs(got - want) / (scale > 0 ? scale : 1.0);
    if (!(e <= value)) {  // also takes NaN
      value = std::isnan(e) ? INFINITY : e;
      std::ostringstream s;
      s << "element " << i << ": got " << got << ", want " << want;
      where = s.str();
    }
  }
};

template <typename T>
std::vector<T> to_host(const DeviceBuffer<T>& d, size_t n) {
  std::vector<T> h(n);
  d.download(h.data(), n);
  return h;
}

// A poison value in every output, so an element the kernel never writes fails the comparison.
void poison(DeviceBuffer<float>& d, size_t n) {
  const std::vector<float> nan(n, NAN);
  d.upload(nan.data(), n);
}

}  // namespace

bool device_usable(std::string* reason) {
  const DeviceProbe probe = probe_devices();
  if (probe.device_count == 0) {
    *reason = probe.reason.empty() ? "no CUDA device found" : probe.reason;
    return false;
  }
  if (probe.compute_capability < 80) {
    *reason = "device " + probe.name + " has compute capability " + std::to_string(probe.compute_capability) +
              "; this build's kernels need 8.0 or newer";
    return false;
  }
  return true;
}

std::vector<CheckResult> check_matmul(GgmlType type, int rows, int cols, int n_tokens, bool gemm, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<uint8_t> wdata = random_weights(type, rows, cols, rng);
  const std::vector<float> x = random_floats(static_cast<size_t>(n_tokens) * cols, -1.0f, 1.0f, rng);
  const size_t row_bytes = quant::row_size(type, cols);
  const size_t n_out = static_cast<size_t>(n_tokens) * rows;

  DeviceBuffer<uint8_t> dw;
  dw.upload(wdata.data(), wdata.size());
  DeviceBuffer<float> dx, dy;
  dx.upload(x.data(), x.size());
  poison(dy, n_out);
  DeviceWeight w{type, dw.get(), rows, cols, row_bytes};
  if (gemm) matmul_gemm(w, dx.get(), n_tokens, dy.get(), nullptr);
  else matmul_gemv(w, dx.get(), n_tokens, dy.get(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> y = to_host(dy, n_out);

  // Exact product of the dequantized weights with the F32 activations, and sum |w_i x_i| as the scale.
  std::vector<float> wrow(cols);
  std::vector<double> exact(n_out), magnitude(n_out);
  for (int r = 0; r < rows; ++r) {
    quant::dequantize_row(type, wdata.data() + r * row_bytes, wrow.data(), cols);
    for (int t = 0; t < n_tokens; ++t) {
      double s = 0, m = 0;
      for (int k = 0; k < cols; ++k) {
        const double p = static_cast<double>(wrow[k]) * x[static_cast<size_t>(t) * cols + k];
        s += p;
        m += std::fabs(p);
      }
      exact[static_cast<size_t>(t) * rows + r] = s;
      magnitude[static_cast<size_t>(t) * rows + r] = m;
    }
  }
  std::vector<float> cpu(n_out);
  cpu::matmul_reference(cpu::WeightView{type, wdata.data(), rows, cols, row_bytes}, x.data(), n_tokens, cpu.data());

  WorstError vs_exact, vs_cpu;
  for (size_t i = 0; i < n_out; ++i) {
    vs_exact.add(y[i], exact[i], magnitude[i], i);
    vs_cpu.add(y[i], cpu[i], magnitude[i], i);
  }
  const std::string op = std::string(gemm ? "gemm " : "gemv ") + quant::type_name(type);
  std::ostringstream shape;
  shape << rows << "x" << cols << " weight, " << n_tokens << " tokens";
  // GEMV: F32 products and sums, ~1e-6 of sum |w x| at these lengths. GEMM: weights and activations
  // rounded to F16 (2^-11 each per term, random signs), well under 1e-3. Against the CPU op the
  // activations' Q8 rounding (up to 1/254 of a block's largest value per element) comes on top.
  const double exact_bound = gemm ? 1e-3 : 2e-5;
  std::vector<CheckResult> out;
  out.push_back(finish(op + " vs dequantized F32", shape.str(), vs_exact.value, exact_bound, vs_exact.where));
  out.push_back(finish(op + " vs cpu::matmul_reference", shape.str(), vs_cpu.value, 1e-2, vs_cpu.where));
  return out;
}

CheckResult check_rms_norm(int n_rows, int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<float> x = random_floats(static_cast<size_t>(n_rows) * dim, -3.0f, 3.0f, rng);
  const std::vector<float> w = random_floats(dim, 0.5f, 1.5f, rng);
  std::vector<float> want(x.size());
  model::rms_norm(x.data(), w.data(), n_rows, dim, 1e-5f, want.data());
  DeviceBuffer<float> dx, dw, dy;
  dx.upload(x.data(), x.size());
  dw.upload(w.data(), w.size());
  poison(dy, x.size());
  rms_norm(dx.get(), dw.get(), n_rows, dim, 1e-5f, dy.get(), nullptr);
  const std::vector<float> got = to_host(dy, x.size());
  WorstError e;
  for (size_t i = 0; i < got.size(); ++i) e.add(got[i], want[i], std::fabs(want[i]) + 1e-6, i);
  // Float sums of dim squares in another order: a few 1e-7 relative in the scale.
  return finish("rms_norm", std::to_string(n_rows) + "x" + std::to_string(dim), e.value, 1e-5, e.where);
}

CheckResult check_swiglu(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> gate = random_floats(n, -8.0f, 8.0f, rng);
  const std::vector<float> up = random_floats(n, -2.0f, 2.0f, rng);
  DeviceBuffer<float> dg, du;
  dg.upload(gate.data(), n);
  du.upload(up.data(), n);
  swiglu(dg.get(), du.get(), n, nullptr);
  const std::vector<float> got = to_host(dg, n);
  model::swiglu(gate.data(), up.data(), n);
  WorstError e;
  for (int64_t i = 0; i < n; ++i) e.add(got[i], gate[i], std::fabs(gate[i]) + 1e-6, i);
  return finish("swiglu", std::to_string(n) + " elements", e.value, 1e-5, e.where);
}

CheckResult check_rope(RopeVariant variant, int n_tokens, int max_pos, uint64_t seed) {
  std::mt19937_64 rng(seed);
  model::Hparams h;
  h.n_head = 8;
  h.head_dim = 128;
  h.n_rot = 128;
  h.rope_freq_base = 500000.0f;
  h.n_ctx_train = 8192;
  h.rope_n_ctx_orig = 8192;
  std::vector<float> factors;
  const char* name = "rope";
  if (variant == RopeVariant::LinearWithFreqFactors) {
    name = "rope linear+freq_factors";
    h.rope_scaling = model::RopeScaling::Linear;
    h.rope_freq_scale = 0.25f;
    factors = random_floats(h.n_rot / 2, 1.0f, 8.0f, rng);
  } else if (variant == RopeVariant::Yarn) {
    name = "rope yarn+freq_factors";
    h.rope_scaling = model::RopeScaling::Yarn;
    h.rope_freq_scale = 0.125f;
    h.yarn_ext_factor = 1.0f;
    factors = random_floats(h.n_rot / 2, 1.0f, 8.0f, rng);
  }
  const model::Rope rope(h, factors);
  std::vector<float> x = random_floats(static_cast<size_t>(n_tokens) * h.n_head * h.head_dim, -2.0f, 2.0f, rng);
  std::uniform_int_distribution<int> pos_dist(0, max_pos);
  std::vector<int32_t> pos(n_tokens);
  for (int32_t& p : pos) p = pos_dist(rng);
  pos[0] = max_pos;

  DeviceBuffer<float> dx, dff;
  DeviceBuffer<int32_t> dpos;
  dx.upload(x.data(), x.size());
  dpos.upload(pos.data(), pos.size());
  if (!factors.empty()) dff.upload(factors.data(), factors.size());
  rope_apply(dx.get(), dpos.get(), n_tokens, h.n_head, rope_params(h), factors.empty() ? nullptr : dff.get(), nullptr);
  const std::vector<float> got = to_host(dx, x.size());

  std::vector<float> cs(h.n_rot);
  const size_t per_token = static_cast<size_t>(h.n_head) * h.head_dim;
  WorstError e;
  for (int t = 0; t < n_tokens; ++t) {
    std::vector<float> row(x.begin() + t * per_token, x.begin() + (t + 1) * per_token);
    rope.angles(pos[t], cs.data());
    rope.rotate(row.data(), h.n_head, cs.data());
    // Scale: the pair's length, which a rotation keeps.
    for (size_t i = 0; i < per_token; ++i) {
      const size_t pair = i & ~size_t{1};
      const float a = x[t * per_token + pair], b = x[t * per_token + pair + 1];
      e.add(got[t * per_token + i], row[i], std::sqrt(a * a + b * b) + 1e-6, t * per_token + i);
    }
  }
  // Same float angles; cos/sin and the rotation differ by a few ulps between libm and CUDA.
  return finish(name, std::to_string(n_tokens) + " tokens, positions to " +
                std::to_string(max_pos), e.value, 1e-5, e.where);
}

CheckResult check_attention(int n_q, int n_k, int n_head, int n_head_kv, int head_dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const std::vector<float> q = random_floats(static_cast<size_t>(n_q) * n_head * head_dim, -2.0f, 2.0f, rng);
  std::vector<float> k = random_floats(static_cast<size_t>(n_k) * n_head_kv * head_dim, -2.0f, 2.0f, rng);
  std::vector<float> v = random_floats(k.size(), -1.0f, 1.0f, rng);
  // The GPU reads f16 keys and values; give the CPU the same rounded numbers.
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k16[i] = quant::fp32_to_fp16(k[i]);
    v16[i] = quant::fp32_to_fp16(v[i]);
    k[i] = quant::fp16_to_fp32(k16[i]);
    v[i] = quant::fp16_to_fp32(v16[i]);
  }
  model::KvShape shape{1, n_head, n_head_kv, head_dim, scale};
  auto cache = model::make_full_kv_cache(shape, n_k, model::KvStorage::F32);
  cache->store(0, 0, n_k, k.data(), v.data());
  std::vector<float> want(q.size());
  cpu::ThreadPool pool(1);
  cache->attend(0, n_k - n_q, n_q, q.data(), want.data(), pool);

  DeviceBuffer<float> dq, dout;
  DeviceBuffer<uint16_t> dk, dv;
  dq.upload(q.data(), q.size());
  dk.upload(k16.data(), k16.size());
  dv.upload(v16.data(), v16.size());
  poison(dout, q.size());
  attention_prefill(dq.get(), dk.get(), dv.get(), dout.get(), AttentionShape{n_q, n_k, n_head, n_head_kv, head_dim, scale},
                    nullptr);
  const std::vector<float> got = to_host(dout, q.size());
  WorstError e;
  for (size_t i = 0; i < got.size(); ++i) e.add(got[i], want[i], 1.0, i);  // values are in [-1, 1]
  std::ostringstream s;
  s << n_q << " queries over " << n_k << " keys, " << n_head << "/" << n_head_kv << " heads, d=" << head_dim;
  // Weighted means of values in [-1, 1]: float sums and the fast exp give errors near 1e-6.
  return finish("attention_prefill", s.str(), e.value, 2e-5, e.where);
}

std::vector<CheckResult> check_lut_scores(int dim, int groups, int centroids, int64_t n, int n_heads, uint64_t seed) {
  std::mt19937_64 rng(seed);
  kv::KeyCodebook cb;
  cb.dim = dim;
  cb.groups = groups;
  cb.centroids_per_group = centroids;
  cb.set_centroid_rows(random_floats(static_cast<size_t>(groups) * centroids * (dim / groups), -1.0f, 1.0f, rng).data());
  const std::vector<float> q = random_floats(static_cast<size_t>(n_heads) * dim, -1.0f, 1.0f, rng);
  std::vector<uint16_t> codes(static_cast<size_t>(n) * groups);
  std::uniform_int_distribution<int> code(0, centroids - 1);
  for (uint16_t& c : codes) c = static_cast<uint16_t>(code(rng));

  const size_t lut_size = static_cast<size_t>(groups) * centroids;
  std::vector<float> want_lut(n_heads * lut_size), want_scores(static_cast<size_t>(n_heads) * n);
  for (int h = 0; h < n_heads; ++h) {
    cb.build_lut(q.data() + static_cast<size_t>(h) * dim, want_lut.data() + h * lut_size);
    kv::score_codes(want_lut.data() + h * lut_size, codes.data(), n, groups, centroids, want_scores.data() + h * n);
  }

  DeviceBuffer<float> dq, dcent, dlut, dscores;
  DeviceBuffer<uint16_t> dcodes;
  dq.upload(q.data(), q.size());
  const std::vector<float> centroid_rows = cb.centroid_rows();  // (g, c, sub) floats, as the kernels read them
  dcent.upload(centroid_rows.data(), centroid_rows.size());
  dcodes.upload(codes.data(), codes.size());
  poison(dlut, want_lut.size());
  poison(dscores, want_scores.size());
  const CodebookShape shape{dim, groups, centroids};
  build_lut(dq.get(), dcent.get(), n_heads, shape, dlut.get(), nullptr);
  score_codes(dlut.get(), dcodes.get(), n, n_heads, shape, dscores.get(), nullptr);
  const std::vector<float> lut = to_host(dlut, want_lut.size());
  const std::vector<float> scores = to_host(dscores, want_scores.size());

  WorstError e_lut, e_scores;
  for (size_t i = 0; i < lut.size(); ++i) e_lut.add(lut[i], want_lut[i], 1.0, i);
  for (size_t i = 0; i < scores.size(); ++i) e_scores.add(scores[i], want_scores[i], 1.0, i);
  std::ostringstream s;
  s << "d=" << dim << " g=" << groups << " c=" << centroids << ", " << n << " tokens, " << n_heads << " heads";
  return {finish("build_lut (bit-exact)", s.str(), e_lut.value, 0.0, e_lut.where),
          finish("score_codes (bit-exact)", s.str(), e_scores.value, 0.0, e_scores.where)};
}

CheckResult check_selection(int n_heads, int64_t n, const kv::SelectParams& params, bool ties, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> level(0, 5);
  std::vector<float> scores(static_cast<size_t>(n_heads) * n);
  for (float& s : scores) s = ties ? static_cast<float>(level(rng)) * 0.25f : normal(rng);
  // A few needles far above the rest, as real attention has.
  for (int h = 0; h < n_heads && n > 8; ++h)
    for (int i = 0; i < 3; ++i) scores[static_cast<size_t>(h) * n + (rng() % n)] += 12.0f;

  DeviceBuffer<float> dscores;
  dscores.upload(scores.data(), scores.size());
  Selector selector;
  std::vector<kv::Selection> got;
  selector.select(dscores.get(), n_heads, n, params, nullptr, got);

  double worst = 0;
  std::string detail;
  size_t selected = 0;
  for (int h = 0; h < n_heads; ++h) {
    kv::Selection want;
    kv::select_tokens(scores.data() + static_cast<size_t>(h) * n, n, params, want);
    selected += want.index.size();
    if (got[h].index != want.index) {
      std::ostringstream s;
      s << "head " << h << ": GPU selected " << got[h].index.size() << " tokens, CPU " << want.index.size();
      for (size_t i = 0; i < std::min(got[h].index.size(), want.index.size()); ++i) {
        if (got[h].index[i] != want.index[i]) {
          s << "; first difference at entry " << i << ": " << got[h].index[i] << " vs " << want.index[i];
          break;
        }
      }
      return finish("select_tokens", "", INFINITY, 0, s.str());
    }
    for (size_t i = 0; i < want.weight.size(); ++i) {
      const double e = std::fabs(got[h].weight[i] - want.weight[i]) / std::max(want.weight[i], 1e-30f);
      if (!(e <= worst)) {
        worst = std::isnan(e) ? INFINITY : e;
        detail = "head " + std::to_string(h) + " weight " + std::to_string(i);
      }
    }
    const double e_mass = std::fabs(got[h].kept_mass - want.kept_mass);
    if (!(e_mass <= worst)) {
      worst = std::isnan(e_mass) ? INFINITY : e_mass;
      detail = "head " + std::to_string(h) + " kept_mass " + std::to_string(got[h].kept_mass) + " vs " +
               std::to_string(want.kept_mass);
    }
  }
  std::ostringstream s;
  s << n_heads << " heads x " << n << " tokens" << (ties ? " (ties)" : "") << ", top_p " << params.top_p << ", margin "
    << params.margin << ", k_max " << params.k_max << ": " << selected << " selected";
  // Same index sets; the weights are float(e / sum) with sums added in another order: within a few ulps.
  return finish("select_tokens (same indices)", s.str(), worst, 1e-6, detail);
}

CheckResult check_value_sums(int n_heads, int heads_per_kv, int64_t n, int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int n_kv = n_heads / heads_per_kv;
  // Host tier layout: (token, kv head, dim) f16 in mapped pinned memory.
  PinnedBuffer<uint16_t> values(static_cast<size_t>(n) * n_kv * dim);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  for (size_t i = 0; i < values.size(); ++i) values.get()[i] = quant::fp32_to_fp16(val(rng));

  // Selections from the CPU selector on random scores, concatenated as the GPU selector lays them out.
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<kv::Selection> sel(n_heads);
  std::vector<int32_t> index, offsets{0};
  std::vector<float> weight;
  std::vector<float> scores(n);
  for (int h = 0; h < n_heads; ++h) {
    for (float& s : scores) s = normal(rng);
    kv::select_tokens(scores.data(), n, kv::SelectParams{}, sel[h]);
    index.insert(index.end(), sel[h].index.begin(), sel[h].index.end());
    weight.insert(weight.end(), sel[h].weight.begin(), sel[h].weight.end());
    offsets.push_back(static_cast<int32_t>(index.size()));
  }
  DeviceBuffer<int32_t> dindex, doffsets;
  DeviceBuffer<float> dweight, dout;
  dindex.upload(index.data(), index.size());
  doffsets.upload(offsets.data(), offsets.size());
  dweight.upload(weight.data(), weight.size());
  poison(dout, static_cast<size_t>(n_heads) * dim);
  ValueLayout layout{values.device_ptr(), static_cast<int64_t>(n_kv) * dim, dim, heads_per_kv, dim};
  sum_selected_values(dindex.get(), dweight.get(), doffsets.get(), n_heads, layout, dout.get(), nullptr);
  const std::vector<float> got = to_host(dout, static_cast<size_t>(n_heads) * dim);

  WorstError e;
  std::vector<float> want(dim);
  for (int h = 0; h < n_heads; ++h) {
    kv::attend_values_f16(sel[h], values.get() + static_cast<size_t>(h / heads_per_kv) * dim, static_cast<int64_t>(n_kv) * dim,
                          dim, want.data());
    for (int c = 0; c < dim; ++c) e.add(got[static_cast<size_t>(h) * dim + c], want[c], 1.0, static_cast<size_t>(h) * dim + c);
  }
  std::ostringstream s;
  s << n_heads << " heads (" << heads_per_kv << " per KV head), " << n << " tokens, d=" << dim << ", "
    << index.size() << " rows read from pinned host memory";
  // Convex combinations of values in [-1, 1] summed in another order.
  return finish("sum_selected_values (mapped host)", s.str(), e.value, 1e-5, e.where);
}

CheckResult check_hc_decode_step(int n_heads, int heads_per_kv, int64_t n, int dim, int groups, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int n_kv = n_heads / heads_per_kv, c = 256;
  kv::KeyCodebook cb;
  cb.dim = dim;
  cb.groups = groups;
  cb.centroids_per_group = c;
  cb.set_centroid_rows(random_floats(static_cast<size_t>(groups) * c * (dim / groups), -1.0f, 1.0f, rng).data());
  // Logits with a spread of a few nats, so top-p keeps a small share of the tokens.
  const std::vector<float> q = random_floats(static_cast<size_t>(n_heads) * dim, -1.2f, 1.2f, rng);
  std::vector<uint16_t> codes(static_cast<size_t>(n_kv) * n * groups);  // (kv head, token, group)
  std::uniform_int_distribution<int> code(0, c - 1);
  for (uint16_t& x : codes) x = static_cast<uint16_t>(code(rng));
  PinnedBuffer<uint16_t> values(static_cast<size_t>(n) * n_kv * dim);  // (token, kv head, dim)
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  for (size_t i = 0; i < values.size(); ++i) values.get()[i] = quant::fp32_to_fp16(val(rng));

  const CodebookShape shape{dim, groups, c};
  const size_t lut_size = static_cast<size_t>(groups) * c;
  DeviceBuffer<float> dq, dcent, dlut(n_heads * lut_size), dscores(static_cast<size_t>(n_heads) * n), dout;
  DeviceBuffer<uint16_t> dcodes;
  dq.upload(q.data(), q.size());
  const std::vector<float> centroid_rows = cb.centroid_rows();  // (g, c, sub) floats, as the kernels read them
  dcent.upload(centroid_rows.data(), centroid_rows.size());
  dcodes.upload(codes.data(), codes.size());
  poison(dout, static_cast<size_t>(n_heads) * dim);
  build_lut(dq.get(), dcent.get(), n_heads, shape, dlut.get(), nullptr);
  for (int kvh = 0; kvh < n_kv; ++kvh) {
    score_codes(dlut.get() + kvh * heads_per_kv * lut_size, dcodes.get() + static_cast<size_t>(kvh) * n * groups, n,
                heads_per_kv, shape, dscores.get() + static_cast<size_t>(kvh) * heads_per_kv * n, nullptr);
  }
  Selector selector;
  std::vector<kv::Selection> got_sel;
  const kv::SelectParams params;
  selector.select(dscores.get(), n_heads, n, params, nullptr, got_sel);
  const ValueLayout layout{values.device_ptr(), static_cast<int64_t>(n_kv) * dim, dim, heads_per_kv, dim};
  sum_selected_values(selector.device_index(), selector.device_weight(), selector.device_offsets(), n_heads, layout,
                      dout.get(), nullptr);
  const std::vector<float> got = to_host(dout, static_cast<size_t>(n_heads) * dim);

  std::vector<float> lut(lut_size), scores(n), want(dim);
  WorstError e;
  size_t selected = 0;
  for (int h = 0; h < n_heads; ++h) {
    const int kvh = h / heads_per_kv;
    cb.build_lut(q.data() + static_cast<size_t>(h) * dim, lut.data());
    kv::score_codes(lut.data(), codes.data() + static_cast<size_t>(kvh) * n * groups, n, groups, c, scores.data());
    kv::Selection sel;
    kv::select_tokens(scores.data(), n, params, sel);
    selected += sel.index.size();
    if (sel.index != got_sel[h].index) {
      return finish("hc decode step", "", INFINITY, 0,
                    "head " + std::to_string(h) + ": GPU selected " + std::to_string(got_sel[h].index.size()) +
                        " tokens, CPU " + std::to_string(sel.index.size()) + " (or other ones)");
    }
    kv::attend_values_f16(sel, values.get() + static_cast<size_t>(kvh) * dim, static_cast<int64_t>(n_kv) * dim, dim,
                          want.data());
    for (int i = 0; i < dim; ++i) e.add(got[static_cast<size_t>(h) * dim + i], want[i], 1.0, static_cast<size_t>(h) * dim + i);
  }
  std::ostringstream s;
  s << n_heads << " heads (" << heads_per_kv << " per KV head), " << n << " tokens, d=" << dim << " g=" << groups << ", "
    << selected << " selected";
  return finish("hc decode step (device chain)", s.str(), e.value, 1e-5, e.where);
}

std::vector<CheckResult> run_all_checks(uint64_t seed) {
  std::vector<CheckResult> all;
  auto add = [&](std::vector<CheckResult> r) { all.insert(all.end(), r.begin(), r.end()); };
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
    add(check_matmul(t, 203, 1024, 1, false, seed + 1));
    add(check_matmul(t, 96, 512, 11, false, seed + 2));
    add(check_matmul(t, 200, 768, 150, true, seed + 3));
  }
  all.push_back(check_rms_norm(7, 4096, seed + 4));
  all.push_back(check_swiglu(100003, seed + 5));
  all.push_back(check_rope(RopeVariant::Plain, 40, 1 << 20, seed + 6));
  all.push_back(check_rope(RopeVariant::LinearWithFreqFactors, 40, 1 << 20, seed + 22));
  all.push_back(check_rope(RopeVariant::Yarn, 40, 1 << 17, seed + 7));
  all.push_back(check_attention(100, 300, 8, 2, 128, seed + 8));
  all.push_back(check_attention(37, 37, 4, 4, 64, seed + 9));
  all.push_back(check_attention(1, 5000, 32, 8, 128, seed + 24));  // decode: keys split over blocks
  add(check_lut_scores(128, 64, 256, 5000, 4, seed + 10));
  add(check_lut_scores(128, 32, 1024, 3000, 4, seed + 11));
  add(check_lut_scores(96, 12, 16, 777, 2, seed + 12));
  kv::SelectParams p;
  all.push_back(check_selection(8, 20000, p, false, seed + 13));
  p.margin = 0.5f;
  all.push_back(check_selection(4, 20000, p, false, seed + 14));
  p.margin = 0;
  p.k_max = 50;
  all.push_back(check_selection(4, 20000, p, false, seed + 15));
  all.push_back(check_selection(2, 30000, kv::SelectParams{}, true, seed + 16));
  p = kv::SelectParams{};
  p.top_p = 0;
  all.push_back(check_selection(2, 5000, p, false, seed + 17));
  // Not 1: there the cut falls where the running sum meets the total, i.e. on rounding alone.
  p.top_p = 0.999f;
  all.push_back(check_selection(2, 5000, p, false, seed + 18));
  p = kv::SelectParams{};
  all.push_back(check_selection(3, 10, p, false, seed + 19));
  all.push_back(check_selection(1, 1 << 20, p, false, seed + 20));
  all.push_back(check_value_sums(8, 4, 20000, 128, seed + 21));
  all.push_back(check_hc_decode_step(32, 4, 50000, 128, 32, seed + 23));
  return all;
}

}  // namespace hcattn::cuda
