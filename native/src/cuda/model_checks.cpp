#include "cuda/model_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sys/stat.h>

#include "hcattn/engine.h"

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

}  // namespace

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
