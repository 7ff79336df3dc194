// The llama forward pass, contexts and sampler on a tiny random F32 model written here as a GGUF:
// logits against a plain double-precision reference implementation of the same architecture, batched
// prefill against one-token decode, fork and truncate, the F16 cache, cancel, errors, and sampling.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "hcattn/engine.h"
#include "test_util.h"

namespace {

// Tiny llama: GQA (4 query heads on 2 KV heads), rope_freqs factors, untied output.
constexpr int kVocab = 96, kEmbd = 32, kLayers = 2, kHeads = 4, kHeadsKv = 2, kHeadDim = 8, kFf = 48, kCtx = 64;
constexpr float kEps = 1e-5f, kRopeBase = 10000.0f;

struct Tensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> data;
};

// ---- a minimal GGUF v3 writer (F32 tensors, scalar metadata) ----
struct Writer {
  std::vector<uint8_t> out;
  void raw(const void* p, size_t n) { out.insert(out.end(), (const uint8_t*)p, (const uint8_t*)p + n); }
  void u32(uint32_t v) { raw(&v, 4); }
  void i32(int32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void str(const std::string& s) { u64(s.size()); raw(s.data(), s.size()); }
  void pad() { while (out.size() % 32) out.push_back(0); }
};

std::vector<uint8_t> write_gguf(const std::vector<Tensor>& tensors, const std::map<std::string, uint32_t>& u32s,
                                const std::map<std::string, float>& f32s, const std::map<std::string, std::string>& strs) {
  Writer w;
  w.raw("GGUF", 4);
  w.u32(3);
  w.u64(tensors.size());
  w.u64(u32s.size() + f32s.size() + strs.size());
  for (const auto& [k, v] : u32s) { w.str(k); w.i32(4); w.u32(v); }
  for (const auto& [k, v] : f32s) { w.str(k); w.i32(6); w.f32(v); }
  for (const auto& [k, v] : strs) { w.str(k); w.i32(8); w.str(v); }
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    w.str(t.name);
    w.u32(static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) w.u64(static_cast<uint64_t>(n));
    w.i32(0);  // F32
    w.u64(offset);
    offset += (t.data.size() * 4 + 31) / 32 * 32;
  }
  w.pad();
  for (const Tensor& t : tensors) {
    w.raw(t.data.data(), t.data.size() * 4);
    w.pad();
  }
  return w.out;
}

// ---- the model's weights, kept for the reference ----
struct Weights {
  std::map<std::string, Tensor> t;
  const std::vector<float>& operator[](const std::string& n) const { return t.at(n).data; }
};

Weights random_weights(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Weights w;
  auto add = [&](const std::string& name, std::vector<int64_t> ne, float scale, float center = 0.0f) {
    Tensor t{name, ne, {}};
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    t.data.resize(n);
    for (float& v : t.data) v = center + scale * normal(rng);
    w.t[name] = t;
  };
  add("token_embd.weight", {kEmbd, kVocab}, 1.0f);
  add("output_norm.weight", {kEmbd}, 0.1f, 1.0f);
  add("output.weight", {kEmbd, kVocab}, 0.3f);
  Tensor freqs{"rope_freqs.weight", {kHeadDim / 2}, {1.0f, 1.5f, 4.0f, 8.0f}};
  w.t[freqs.name] = freqs;
  for (int l = 0; l < kLayers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(b + "attn_q.weight", {kEmbd, kHeads * kHeadDim}, 0.4f);
    add(b + "attn_k.weight", {kEmbd, kHeadsKv * kHeadDim}, 0.4f);
    add(b + "attn_v.weight", {kEmbd, kHeadsKv * kHeadDim}, 0.3f);
    add(b + "attn_output.weight", {kHeads * kHeadDim, kEmbd}, 0.3f);
    add(b + "ffn_norm.weight", {kEmbd}, 0.1f, 1.0f);
    add(b + "ffn_gate.weight", {kEmbd, kFf}, 0.3f);
    add(b + "ffn_up.weight", {kEmbd, kFf}, 0.3f);
    add(b + "ffn_down.weight", {kFf, kEmbd}, 0.3f);
  }
  return w;
}

// linear_factor > 0 adds llama.rope.scaling.type = "linear" with that factor (positions divided by it).
std::string write_model_file(const Weights& w, const std::string& path, float linear_factor = 0) {
  std::vector<Tensor> list;
  for (const auto& [name, t] : w.t) list.push_back(t);
  const std::vector<uint8_t> bytes = write_gguf(
      list,
      {{"llama.context_length", kCtx}, {"llama.embedding_length", kEmbd}, {"llama.block_count", kLayers},
       {"llama.feed_forward_length", kFf}, {"llama.attention.head_count", kHeads},
       {"llama.attention.head_count_kv", kHeadsKv}, {"llama.vocab_size", kVocab}, {"general.file_type", 0},
       {"tokenizer.ggml.eos_token_id", 2}},
      linear_factor > 0 ? std::map<std::string, float>{{"llama.attention.layer_norm_rms_epsilon", kEps},
                                                       {"llama.rope.freq_base", kRopeBase},
                                                       {"llama.rope.scaling.factor", linear_factor}}
                        : std::map<std::string, float>{{"llama.attention.layer_norm_rms_epsilon", kEps},
                                                       {"llama.rope.freq_base", kRopeBase}},
      linear_factor > 0 ? std::map<std::string, std::string>{{"general.architecture", "llama"},
                                                             {"general.name", "test-tiny"},
                                                             {"llama.rope.scaling.type", "linear"}}
                        : std::map<std::string, std::string>{{"general.architecture", "llama"}, {"general.name", "test-tiny"}});
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

// ---- reference forward in double: whole sequence, positions 0..n-1, logits for every position ----
using Vec = std::vector<double>;

// y = W x for W stored as `rows` rows of `cols` (GGUF ne = [cols, rows]).
Vec matvec(const std::vector<float>& w, const Vec& x, int rows, int cols) {
  Vec y(rows, 0.0);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) y[r] += w[static_cast<size_t>(r) * cols + c] * x[c];
  }
  return y;
}

Vec rmsnorm(const Vec& x, const std::vector<float>& g) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double s = 1.0 / std::sqrt(ss / x.size() + kEps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * s * g[i];
  return y;
}

void rope(Vec& x, int n_heads, double pos, const std::vector<float>& freqs) {
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < kHeadDim / 2; ++i) {
      const double theta = pos * std::pow((double)kRopeBase, -2.0 * i / kHeadDim) / freqs[i];
      double& a = x[h * kHeadDim + 2 * i];
      double& b = x[h * kHeadDim + 2 * i + 1];
      const double a0 = a, b0 = b;
      a = a0 * std::cos(theta) - b0 * std::sin(theta);
      b = a0 * std::sin(theta) + b0 * std::cos(theta);
    }
  }
}

std::vector<Vec> reference_logits(const Weights& w, const std::vector<int>& tokens, double position_scale = 1.0) {
  const int n = static_cast<int>(tokens.size());
  std::vector<Vec> x(n, Vec(kEmbd));
  for (int t = 0; t < n; ++t) {
    for (int i = 0; i < kEmbd; ++i) x[t][i] = w["token_embd.weight"][tokens[t] * kEmbd + i];
  }
  for (int l = 0; l < kLayers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    std::vector<Vec> q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const Vec h = rmsnorm(x[t], w[b + "attn_norm.weight"]);
      q[t] = matvec(w[b + "attn_q.weight"], h, kHeads * kHeadDim, kEmbd);
      k[t] = matvec(w[b + "attn_k.weight"], h, kHeadsKv * kHeadDim, kEmbd);
      v[t] = matvec(w[b + "attn_v.weight"], h, kHeadsKv * kHeadDim, kEmbd);
      rope(q[t], kHeads, t * position_scale, w["rope_freqs.weight"]);
      rope(k[t], kHeadsKv, t * position_scale, w["rope_freqs.weight"]);
    }
    for (int t = 0; t < n; ++t) {
      Vec att(kHeads * kHeadDim, 0.0);
      for (int h = 0; h < kHeads; ++h) {
        const int kvh = h / (kHeads / kHeadsKv);
        Vec s(t + 1);
        double m = -1e300;
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < kHeadDim; ++i) d += q[t][h * kHeadDim + i] * k[j][kvh * kHeadDim + i];
          s[j] = d / std::sqrt((double)kHeadDim);
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - m));
        for (int j = 0; j <= t; ++j) {
          for (int i = 0; i < kHeadDim; ++i) att[h * kHeadDim + i] += s[j] / z * v[j][kvh * kHeadDim + i];
        }
      }
      const Vec o = matvec(w[b + "attn_output.weight"], att, kEmbd, kHeads * kHeadDim);
      for (int i = 0; i < kEmbd; ++i) x[t][i] += o[i];
      const Vec h = rmsnorm(x[t], w[b + "ffn_norm.weight"]);
      Vec g = matvec(w[b + "ffn_gate.weight"], h, kFf, kEmbd);
      const Vec u = matvec(w[b + "ffn_up.weight"], h, kFf, kEmbd);
      for (int i = 0; i < kFf; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      const Vec d = matvec(w[b + "ffn_down.weight"], g, kEmbd, kFf);
      for (int i = 0; i < kEmbd; ++i) x[t][i] += d[i];
    }
  }
  std::vector<Vec> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = matvec(w["output.weight"], rmsnorm(x[t], w["output_norm.weight"]), kVocab, kEmbd);
  return logits;
}

double max_abs_diff(const float* a, const float* b, int n) {
  double m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

template <typename F>
bool throws(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::printf("  expected error: %s\n", e.what());
    return true;
  }
  return false;
}

}  // namespace

int main() {
  const Weights w = random_weights(1234);
  const std::string path = write_model_file(w, "/tmp/hcattn_test_model_" + std::to_string(::getpid()) + ".gguf");
  auto model = hcattn::Model::load(path, {2});
  const hcattn::ModelInfo& info = model->info();
  CHECK(info.name == "test-tiny");
  CHECK(info.n_layer == kLayers && info.n_head == kHeads && info.n_head_kv == kHeadsKv && info.head_dim == kHeadDim);
  CHECK(info.n_vocab == kVocab && info.n_ff == kFf && info.n_ctx_train == kCtx);
  CHECK(info.quantization == "F32");
  CHECK(info.digest.size() == 64);
  CHECK(info.eos == 2);

  std::vector<int> seq;
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) seq.push_back(static_cast<int>(rng() % kVocab));
  const std::vector<hcattn::Token> ids(seq.begin(), seq.end());
  const std::vector<Vec> ref = reference_logits(w, seq);

  // Batched evaluation (chunks of 16: several chunks, the last one partial) against the reference.
  hcattn::ContextOptions copt;
  copt.n_ctx = kCtx;
  copt.n_batch = 16;
  auto ctx = model->create_context(copt);
  const std::vector<float> all = ctx->eval_logits(ids);
  double max_ref = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int i = 0; i < kVocab; ++i) max_ref = std::max(max_ref, std::fabs(all[t * kVocab + i] - ref[t][i]));
  }
  std::printf("batched logits vs double reference: max |diff| = %.3g\n", max_ref);
  CHECK(max_ref < 2e-4);
  CHECK(ctx->n_past() == 40);

  // One token at a time gives the same logits as the batch.
  auto one = model->create_context(copt);
  double max_decode = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::vector<float>& l = one->decode(ids[t]);
    max_decode = std::max(max_decode, max_abs_diff(l.data(), all.data() + t * kVocab, kVocab));
  }
  std::printf("decode vs batch: max |diff| = %.3g\n", max_decode);
  CHECK(max_decode < 1e-4);

  // prefill keeps only the last logits, equal to the batch's last row.
  auto pre = model->create_context(copt);
  int progress_calls = 0;
  int64_t last_done = 0;
  CHECK(pre->prefill(ids, [&](const hcattn::PrefillProgress& p) {
    ++progress_calls;
    last_done = p.done;
    CHECK(p.total == 40);
  }));
  CHECK(progress_calls == 3 && last_done == 40);
  CHECK(max_abs_diff(pre->logits().data(), all.data() + 39 * kVocab, kVocab) < 1e-4);

  // fork at a prefix, continue: same logits as the original sequence; the original is untouched.
  auto f = ctx->fork(25);
  CHECK(f->n_past() == 25);
  const std::vector<float> tail = f->eval_logits(std::vector<hcattn::Token>(ids.begin() + 25, ids.end()));
  CHECK(max_abs_diff(tail.data(), all.data() + 25 * kVocab, 15 * kVocab) < 1e-4);
  CHECK(ctx->n_past() == 40);
  // truncate and re-evaluate gives the same logits again.
  ctx->truncate(30);
  CHECK(ctx->logits().empty());
  const std::vector<float>& again = ctx->decode(ids[30]);
  CHECK(max_abs_diff(again.data(), all.data() + 30 * kVocab, kVocab) < 1e-4);

  // F16 cache: close to the F32 one, not identical.
  hcattn::ContextOptions h16 = copt;
  h16.kv_type = hcattn::KvType::F16;
  auto c16 = model->create_context(h16);
  const std::vector<float> l16 = c16->eval_logits(ids);
  const double d16 = max_abs_diff(l16.data(), all.data(), 40 * kVocab);
  std::printf("F16 cache vs F32 cache: max |diff| = %.3g\n", d16);
  CHECK(d16 > 0 && d16 < 0.1);

  // Cancel before the first chunk: nothing evaluated.
  std::atomic<bool> cancel{true};
  auto cc = model->create_context(copt);
  CHECK(!cc->prefill(ids, {}, &cancel));
  CHECK(cc->n_past() == 0);

  // Errors a caller can cause.
  CHECK(throws([&] { cc->decode(kVocab); }));
  CHECK(throws([&] { cc->generate({}); }));
  CHECK(throws([&] { model->create_context(copt)->prefill(std::vector<hcattn::Token>(kCtx + 1, 1)); }));
  CHECK(throws([&] { hcattn::Model::load("/nonexistent/model.gguf"); }));

  // log_softmax / top_logprobs.
  const std::vector<float> lp = hcattn::log_softmax(all.data(), kVocab);
  double z = 0;
  for (float v : lp) z += std::exp((double)v);
  CHECK_NEAR(z, 1.0, 1e-5);
  const hcattn::TopLogprobs top = hcattn::top_logprobs(all.data(), kVocab, 5);
  CHECK(top.top.size() == 5);
  CHECK(top.top[0].second >= top.top[1].second && top.top[3].second >= top.top[4].second);
  CHECK_NEAR(top.top[0].second, lp[top.top[0].first], 1e-6);

  // Greedy generation follows argmax of decode, token by token.
  auto g = model->create_context(copt);
  g->prefill(std::vector<hcattn::Token>(ids.begin(), ids.begin() + 8));
  hcattn::GenerateOptions gopt;
  gopt.max_tokens = 12;
  gopt.sampling.temperature = 0;
  int streamed = 0;
  const hcattn::GenerateResult gr = g->generate(gopt, [&](hcattn::Token, const std::string&) { ++streamed; });
  auto check_ctx = model->create_context(copt);
  check_ctx->prefill(std::vector<hcattn::Token>(ids.begin(), ids.begin() + 8));
  bool same = true;
  for (size_t i = 0; i < gr.tokens.size(); ++i) {
    const std::vector<float>& l = check_ctx->logits();
    const int argmax = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
    if (argmax == 2) break;  // eos
    same = same && argmax == gr.tokens[i];
    check_ctx->decode(gr.tokens[i]);
  }
  CHECK(same);
  CHECK(streamed == static_cast<int>(gr.tokens.size()));
  CHECK(gr.stop_reason == "length" || gr.stop_reason == "eog");
  std::printf("greedy: %zu tokens, stop %s\n", gr.tokens.size(), gr.stop_reason.c_str());

  // Sampler on hand-made logits.
  std::vector<float> logits = {1.0f, 3.0f, 2.9f, -1.0f, 0.5f};
  hcattn::SamplingParams greedy;
  greedy.temperature = 0;
  CHECK(hcattn::Sampler(greedy, 5).sample(logits.data()) == 1);
  hcattn::SamplingParams penal = greedy;
  penal.repeat_penalty = 1.5f;
  hcattn::Sampler ps(penal, 5);
  ps.accept(1);
  CHECK(ps.sample(logits.data()) == 2);  // 3.0 / 1.5 = 2.0 < 2.9
  hcattn::SamplingParams topk;
  topk.temperature = 5.0f;
  topk.top_k = 1;
  hcattn::Sampler ks(topk, 5);
  for (int i = 0; i < 20; ++i) CHECK(ks.sample(logits.data()) == 1);
  hcattn::SamplingParams topp;
  topp.temperature = 1.0f;
  topp.top_k = 0;
  topp.top_p = 0.85f;
  hcattn::Sampler tp(topp, 5);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 2000; ++i) ++counts[tp.sample(logits.data())];
  CHECK(counts[3] == 0 && counts[0] == 0 && counts[4] == 0);  // outside the 0.85 nucleus
  CHECK(counts[1] > counts[2] && counts[2] > 600);
  hcattn::SamplingParams seeded;
  seeded.temperature = 1.0f;
  seeded.top_k = 0;
  seeded.top_p = 1.0f;
  seeded.seed = 42;
  hcattn::Sampler s1(seeded, 5), s2(seeded, 5);
  std::vector<int> all_counts(5, 0);
  bool reproducible = true;
  for (int i = 0; i < 2000; ++i) {
    const int a = s1.sample(logits.data());
    reproducible = reproducible && a == s2.sample(logits.data());
    ++all_counts[a];
  }
  CHECK(reproducible);
  // p(token 3) = e^-1 / Σ e^l ≈ 0.0080: rare but drawn.
  CHECK(all_counts[3] > 0 && all_counts[3] < 50);

  // Linear RoPE scaling: the same weights with positions compressed 4x.
  const std::string linear_path = write_model_file(w, path + ".linear.gguf", 4.0f);
  auto linear = hcattn::Model::load(linear_path, {2});
  const std::vector<float> lin = linear->create_context(copt)->eval_logits(ids);
  const std::vector<Vec> lin_ref = reference_logits(w, seq, 0.25);
  double max_lin = 0, moved = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int i = 0; i < kVocab; ++i) {
      max_lin = std::max(max_lin, std::fabs(lin[t * kVocab + i] - lin_ref[t][i]));
      moved = std::max(moved, static_cast<double>(std::fabs(lin[t * kVocab + i] - all[t * kVocab + i])));
    }
  }
  std::printf("linear RoPE scaling x4 vs double reference: max |diff| = %.3g (differs from unscaled by %.3g)\n", max_lin, moved);
  CHECK(max_lin < 2e-4);
  CHECK(moved > 1e-2);
  std::remove(linear_path.c_str());

  std::remove(path.c_str());
  return test_summary("model");
}
