#include "cuda/model_checks.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sys/stat.h>

#include "common/error.h"
#include "gguf/gguf_writer.h"
#include "hcattn/engine.h"
#include "quant/types.h"

namespace hcattn::cuda {

namespace {

constexpr int kPrefillTokens = 128;  // in chunks of 48: the tensor-core GEMM and chunk attention
constexpr int kDecodeTokens = 32;    // one at a time: the GEMV and single-query attention
constexpr int kBatch = 48;

ContextOptions context_options(const std::string& kv_mode) {
  ContextOptions c;
  c.n_ctx = kPrefillTokens + kDecodeTokens;
  c.n_batch = kBatch;
  if (kv_mode == "f16") {
    c.kv_type = KvType::F16;
  } else if (kv_mode != "f32") {
    c.kv.mode = kv_mode;
    c.kv.calibration_tokens = 64;  // codebooks trained inside the sequence, so the budget is in force
    c.kv.recent = 16;
  }
  return c;
}

// Log-probabilities after every token: a prefill in chunks, then single-token decodes.
std::vector<std::vector<float>> run(Model& model, const std::vector<Token>& tokens, const std::string& kv_mode) {
  const int n_vocab = model.info().n_vocab;
  auto ctx = model.create_context(context_options(kv_mode));
  const std::vector<Token> prompt(tokens.begin(), tokens.begin() + kPrefillTokens);
  const std::vector<float> logits = ctx->eval_logits(prompt);
  std::vector<std::vector<float>> out;
  for (int t = 0; t < kPrefillTokens; ++t) out.push_back(log_softmax(logits.data() + static_cast<size_t>(t) * n_vocab, n_vocab));
  for (int t = kPrefillTokens; t < static_cast<int>(tokens.size()); ++t) {
    out.push_back(log_softmax(ctx->decode(tokens[t]).data(), n_vocab));
  }
  return out;
}

// ---- a small llama GGUF with random weights, written for the check (no files to carry) ----

using quant::GgmlType;

// Q8_0 as llama.cpp quantizes: d = max|x| / 127, q = round(x / d).
void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / quant::QK; ++b, x += quant::QK) {
    float amax = 0;
    for (int i = 0; i < quant::QK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    quant::BlockQ8_0 blk{};
    blk.d = quant::fp32_to_fp16(d);
    for (int i = 0; i < quant::QK; ++i) blk.qs[i] = static_cast<int8_t>(std::lround(x[i] * id));
    std::memcpy(out + b * sizeof blk, &blk, sizeof blk);
  }
}

// Q4_0 as llama.cpp quantizes: d = (the value of largest magnitude) / -8, q = x / d + 8.5 clamped to 15;
// element i in the low nibble of byte i, element i + 16 in its high nibble.
void quantize_q4_0(const float* x, int64_t n, uint8_t* out) {
  for (int64_t b = 0; b < n / quant::QK; ++b, x += quant::QK) {
    float amax = 0, max = 0;
    for (int i = 0; i < quant::QK; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    quant::BlockQ4_0 blk{};
    blk.d = quant::fp32_to_fp16(d);
    for (int i = 0; i < quant::QK / 2; ++i) {
      const int lo = std::min(15, static_cast<int>(x[i] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(x[i + quant::QK / 2] * id + 8.5f));
      blk.qs[i] = static_cast<uint8_t>(lo | (hi << 4));
    }
    std::memcpy(out + b * sizeof blk, &blk, sizeof blk);
  }
}

// `v` (`rows` rows of `cols` values) in `type`'s encoding.
std::vector<uint8_t> encode(GgmlType type, int64_t cols, int64_t rows, const std::vector<float>& v) {
  std::vector<uint8_t> bytes(quant::row_size(type, cols) * rows);
  switch (type) {
    case GgmlType::F32: std::memcpy(bytes.data(), v.data(), bytes.size()); break;
    case GgmlType::F16:
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = quant::fp32_to_fp16(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
      break;
    case GgmlType::Q8_0: quantize_q8_0(v.data(), static_cast<int64_t>(v.size()), bytes.data()); break;
    case GgmlType::Q4_0: quantize_q4_0(v.data(), static_cast<int64_t>(v.size()), bytes.data()); break;
    default: throw Error("test model writer: unsupported type");
  }
  return bytes;
}

// The GGUF writer with metadata and weights as the model loader reads them.
class ModelWriter {
 public:
  void kv_u32(const std::string& key, uint32_t v) { w_.kv_scalar(key, gguf::ValueType::U32, v); }
  void kv_f32(const std::string& key, float v) { w_.kv_scalar(key, gguf::ValueType::F32, v); }
  void kv_str(const std::string& key, const std::string& v) { w_.kv_string(key, v); }
  // A 2-D tensor of `rows` rows and `cols` columns (a 1-D one when rows == 1), stored as `type`.
  void tensor(const std::string& name, GgmlType type, int64_t cols, int64_t rows, const std::vector<float>& v) {
    const std::vector<int64_t> ne = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
    w_.tensor(name, type, ne, encode(type, cols, rows, v));
  }
  void write(const std::string& path) const { w_.write(path); }

 private:
  gguf::Writer w_;
};

}  // namespace

// Weights are scaled so that activations stay near unit size through the layers.
std::string write_random_model(GgmlType type, bool rope_freqs, uint64_t seed) {
  constexpr int vocab = 2048, embd = 256, heads = 4, kv_heads = 2, head_dim = 64, ff = 512, layers = 2;
  std::mt19937_64 rng(seed);
  auto uniform = [&](int64_t n, float scale) {
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = u(rng);
    return v;
  };
  auto around_one = [&](int64_t n) {
    std::vector<float> v = uniform(n, 0.2f);
    for (float& x : v) x += 1.0f;
    return v;
  };
  ModelWriter w;
  w.kv_str("general.architecture", "llama");
  w.kv_str("general.name", std::string("cuda-check-") + quant::type_name(type));
  w.kv_u32("llama.context_length", 4096);
  w.kv_u32("llama.embedding_length", embd);
  w.kv_u32("llama.block_count", layers);
  w.kv_u32("llama.feed_forward_length", ff);
  w.kv_u32("llama.attention.head_count", heads);
  w.kv_u32("llama.attention.head_count_kv", kv_heads);
  w.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.kv_f32("llama.rope.freq_base", 500000.0f);
  w.kv_u32("llama.vocab_size", vocab);
  const float in_scale = std::sqrt(3.0f / embd), ff_scale = std::sqrt(3.0f / ff);
  w.tensor("token_embd.weight", type, embd, vocab, uniform(int64_t{vocab} * embd, 1.0f));
  w.tensor("output_norm.weight", GgmlType::F32, embd, 1, around_one(embd));
  w.tensor("output.weight", type, embd, vocab, uniform(int64_t{vocab} * embd, 8 * in_scale));
  if (rope_freqs) {
    std::vector<float> f(head_dim / 2);
    for (size_t i = 0; i < f.size(); ++i) f[i] = 1.0f + static_cast<float>(i % 8);
    w.tensor("rope_freqs.weight", GgmlType::F32, head_dim / 2, 1, f);
  }
  for (int l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.tensor(b + "attn_norm.weight", GgmlType::F32, embd, 1, around_one(embd));
    w.tensor(b + "attn_q.weight", type, embd, heads * head_dim, uniform(int64_t{embd} * heads * head_dim, 2 * in_scale));
    w.tensor(b + "attn_k.weight", type, embd, kv_heads * head_dim, uniform(int64_t{embd} * kv_heads * head_dim, 2 * in_scale));
    w.tensor(b + "attn_v.weight", type, embd, kv_heads * head_dim, uniform(int64_t{embd} * kv_heads * head_dim, in_scale));
    w.tensor(b + "attn_output.weight", type, heads * head_dim, embd, uniform(int64_t{embd} * heads * head_dim, in_scale));
    w.tensor(b + "ffn_norm.weight", GgmlType::F32, embd, 1, around_one(embd));
    w.tensor(b + "ffn_gate.weight", type, embd, ff, uniform(int64_t{embd} * ff, in_scale));
    w.tensor(b + "ffn_up.weight", type, embd, ff, uniform(int64_t{embd} * ff, in_scale));
    w.tensor(b + "ffn_down.weight", type, ff, embd, uniform(int64_t{embd} * ff, ff_scale));
  }
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/hcattn-cuda-check-" + std::to_string(getpid()) + "-" +
                           quant::type_name(type) + (rope_freqs ? "-rope-freqs" : "") + ".gguf";
  w.write(path);
  return path;
}

CheckResult check_model_logprobs(const std::string& path, const std::string& kv_mode, bool exact, uint64_t seed) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  const std::string op = "model " + name + " kv " + kv_mode;
  ModelOptions cpu_options, gpu_options;
  cpu_options.device = "cpu";
  gpu_options.device = "cuda";
  const auto cpu = Model::load(path, cpu_options);
  const auto gpu = Model::load(path, gpu_options);
  CheckResult r;
  r.op = op;
  if (gpu->info().device != "cuda") {
    r.detail = "the model did not load on the GPU: " + gpu->info().device_note;
    r.error = INFINITY;
    r.bound = 0;
    return r;
  }
  std::mt19937_64 rng(seed);
  std::vector<Token> tokens(kPrefillTokens + kDecodeTokens);
  for (Token& t : tokens) t = static_cast<Token>(rng() % static_cast<uint64_t>(cpu->info().n_vocab));
  const auto want = run(*cpu, tokens, kv_mode);
  const auto got = run(*gpu, tokens, kv_mode);

  double max_diff = 0;
  int worst_pos = 0, agree = 0;
  for (size_t p = 0; p < want.size(); ++p) {
    for (size_t i = 0; i < want[p].size(); ++i) {
      const double d = std::fabs(static_cast<double>(want[p][i]) - got[p][i]);
      if (!(d <= max_diff)) {  // NaN counts as the worst
        max_diff = std::isnan(d) ? INFINITY : d;
        worst_pos = static_cast<int>(p);
      }
    }
    const auto a = std::max_element(want[p].begin(), want[p].end()) - want[p].begin();
    const auto b = std::max_element(got[p].begin(), got[p].end()) - got[p].begin();
    agree += a == b;
  }
  const double agreement = static_cast<double>(agree) / want.size();
  char shape[160];
  std::snprintf(shape, sizeof shape, "%zu positions (prefill %d in chunks of %d, decode %d): max |dlogprob| %.3g at %d, argmax %.1f%%",
                want.size(), kPrefillTokens, kBatch, kDecodeTokens, max_diff, worst_pos, 100 * agreement);
  r.shape = shape;
  if (exact) {
    r.error = max_diff;
    r.bound = 1e-3;
  } else {
    r.error = 1.0 - agreement;
    r.bound = 0.01;
  }
  r.passed = r.error <= r.bound;
  if (!r.passed) r.detail = exact ? "log-probabilities differ beyond the F32 bound" : "argmax agreement below 99%";
  return r;
}

std::vector<CheckResult> check_random_models(uint64_t seed) {
  struct Case {
    GgmlType type;
    bool rope_freqs;
    const char* kv;
    bool exact;
  };
  const Case cases[] = {{GgmlType::F32, true, "f32", true},    {GgmlType::F16, false, "f32", false},
                        {GgmlType::Q8_0, false, "f32", false}, {GgmlType::Q4_0, false, "f16", false},
                        {GgmlType::Q8_0, false, "25%", false}};
  std::vector<CheckResult> out;
  for (const Case& c : cases) {
    const std::string path = write_random_model(c.type, c.rope_freqs, seed++);
    try {
      out.push_back(check_model_logprobs(path, c.kv, c.exact, seed++));
    } catch (...) {
      std::remove(path.c_str());
      throw;
    }
    std::remove(path.c_str());
  }
  return out;
}

std::vector<CheckResult> check_models(const std::string& dir, uint64_t seed, std::vector<std::string>* missing) {
  struct Case {
    const char* file;
    const char* kv;
    bool exact;
  };
  // F32 models compare exactly (rope_freqs, linear and YaRN scaling included); F16 and quantized
  // weights by argmax; an HCAttention budget through the host cache; the F16 full cache.
  const Case cases[] = {{"tiny-f32.gguf", "f32", true},         {"tiny-rope-freqs-f32.gguf", "f32", true},
                        {"tiny-linear4-f32.gguf", "f32", true}, {"tiny-yarn4-f32.gguf", "f32", true},
                        {"tiny-hd128-f16.gguf", "f32", false},  {"tiny-hd128-q8_0.gguf", "f32", false},
                        {"tiny-hd128-q4_0.gguf", "f32", false}, {"tiny-hd128-q4_k.gguf", "f32", false},
                        {"tiny-hd128-q6_k.gguf", "f32", false}, {"tiny-hd128-q4_0.gguf", "f16", false},
                        {"tiny-hd128-q8_0.gguf", "25%", false}};
  std::vector<CheckResult> out;
  for (const Case& c : cases) {
    const std::string path = dir + "/" + c.file;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      if (missing && std::find(missing->begin(), missing->end(), c.file) == missing->end()) missing->push_back(c.file);
      continue;
    }
    out.push_back(check_model_logprobs(path, c.kv, c.exact, seed++));
  }
  return out;
}

}  // namespace hcattn::cuda
