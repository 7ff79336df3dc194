// Phase-aware prefill on real weights (stories260K): a document prefilled with star-attention blocks and a
// question prefilled with global attention.
//   - Star-phase results do not depend on how the document is split into calls and chunks: a context
//     prefilled to a longer text, truncated to a segment boundary and prefilled with the rest of the
//     document (other chunk sizes, single-token calls) holds exactly the logits of a fresh prefill, and
//     the question after it gives the same logits bit for bit.
//   - The global flag changes what a question reads when star_block > 0, and nothing when it is 0.
// With HCATTN_KV_PHASES_MODEL=<gguf> (e.g. tiny-hd128-q8_0), HCATTN_KV_PHASES_TOKENS=<n> and optionally
// HCATTN_KV_PHASES_BLOCKS=0,1024,2048,4096 (0: a fully selected prefix) it instead measures, run from the
// repository root: the prefill time of n tokens of this repository's own sources at 25% and the next-token
// agreement with the full cache on up to 256 question tokens (README.md) prefilled globally after them
// (models without a text vocabulary: their own samples).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hcattn/engine.h"
#include "kv_test_util.h"
#include "test_util.h"

namespace {

using hcattn::Token;
using hcattn_test::sample_tokens;

std::vector<Token> slice(const std::vector<Token>& v, size_t from, size_t to) {
  return std::vector<Token>(v.begin() + from, v.begin() + to);
}

// Prefills `tokens` in calls of `call` tokens (each split by the context into n_batch chunks).
void prefill_in_calls(hcattn::Context& ctx, const std::vector<Token>& tokens, size_t call, bool global) {
  hcattn::PrefillOptions po;
  po.global = global;
  for (size_t at = 0; at < tokens.size(); at += call)
    ctx.prefill(slice(tokens, at, std::min(tokens.size(), at + call)), {}, nullptr, po);
}

int argmax(const float* v, int n) { return static_cast<int>(std::max_element(v, v + n) - v); }

int equivalence_checks(const std::string& path) {
  auto model = hcattn::Model::load(path, {2});
  const int n_vocab = model->info().n_vocab;
  const std::vector<Token> text = sample_tokens(*model, 512, 7);
  const std::vector<Token> doc = slice(text, 0, 440), question = slice(text, 440, 480);

  hcattn::ContextOptions co;
  co.n_ctx = 512;
  co.n_batch = 64;
  co.kv.mode = "25%";
  co.kv.star_block = 96;
  co.kv.calibration_tokens = 128;
  co.kv.recent = 16;

  // Fresh: the document in one call (64-token chunks), the question global.
  auto fresh = model->create_context(co);
  fresh->prefill(doc);
  const std::vector<float> doc_logits = fresh->logits();
  fresh->prefill(question, {}, nullptr, {true});
  const std::vector<float> fresh_logits = fresh->logits();

  // Another history: the first 300 tokens in calls of 50, then 60 tokens of another text; truncated to
  // the segment boundary 250, the rest of the document in calls of 37 and of single tokens. (The question
  // is then prefilled in the same chunks as above: global-phase queries keep their own chunk exactly, so
  // they depend on the chunk size; star-phase ones do not.)
  auto edited = model->create_context(co);
  prefill_in_calls(*edited, slice(doc, 0, 300), 50, false);
  prefill_in_calls(*edited, slice(text, 100, 160), 60, false);
  edited->truncate(250);
  prefill_in_calls(*edited, slice(doc, 250, 400), 37, false);
  prefill_in_calls(*edited, slice(doc, 400, 440), 1, false);
  CHECK(edited->tokens() == doc);
  CHECK(edited->logits() == doc_logits);
  edited->prefill(question, {}, nullptr, {true});
  const bool same = edited->logits() == fresh_logits;
  std::printf("truncate to a segment boundary + tail prefill (other chunks) = fresh prefill, question after it: %s\n",
              same ? "bit-identical" : "DIFFERENT");
  CHECK(same);

  // A fork of the document answers the same question the same way (the prefix is never modified).
  auto forked = fresh->fork(440);
  forked->prefill(question, {}, nullptr, {true});
  CHECK(forked->logits() == fresh_logits);

  // The flag matters with star blocks: a star-prefilled question reads only its block and the sinks.
  auto star_question = fresh->fork(440);
  star_question->prefill(question);
  double diff = 0;
  for (int i = 0; i < n_vocab; ++i) diff = std::max(diff, std::fabs(double(star_question->logits()[i]) - fresh_logits[i]));
  std::printf("question prefilled with star blocks vs global attention: max |logit diff| %.3g\n", diff);
  CHECK(diff > 1e-4);

  // Without star blocks the flag changes nothing.
  hcattn::ContextOptions co3 = co;
  co3.kv.star_block = 0;
  auto a = model->create_context(co3);
  auto b = model->create_context(co3);
  a->prefill(doc);
  a->prefill(question);
  b->prefill(doc, {}, nullptr, {true});
  b->prefill(question, {}, nullptr, {true});
  CHECK(a->logits() == b->logits());
  return test_summary("kv_phases");
}

std::string read_sources() {
  // This repository's own engine sources stand in for a repository prefix.
  const char* files[] = {"native/src/kv/hc_cache.cpp", "native/src/kv/snapshot.cpp", "native/src/engine/model.cpp",
                         "native/src/model/llama_forward.cpp", "native/src/kv/selection.cpp", "native/src/kv/codebook.cpp",
                         "native/src/tokenizer/tokenizer.cpp", "native/src/gguf/gguf.cpp", "native/src/addon/model_binding.cpp",
                         "src/sidecar/sessions.ts", "src/workspace/indexer.ts"};
  std::string all;
  for (const char* f : files) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    all += "### " + std::string(f) + "\n" + ss.str();
  }
  return all;
}

// CPU time of the process (all threads): on a shared machine a steadier measure of work than wall time.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int measure(const std::string& path, int n_tokens, const std::vector<int>& blocks) {
  auto model = hcattn::Model::load(path, {2});
  const int n_vocab = model->info().n_vocab;
  std::vector<Token> doc, question;
  try {
    const std::vector<Token> base = model->tokenize(read_sources(), true, false);
    while (static_cast<int>(doc.size()) < n_tokens) doc.insert(doc.end(), base.begin() + (doc.empty() ? 0 : 1), base.end());
    doc.resize(n_tokens);
    // The question: 256 tokens of another text than the document's start, attending globally.
    std::ifstream in("README.md");
    std::stringstream ss;
    ss << "\nQuestion: explain this text and how it relates to the code above.\n" << in.rdbuf();
    question = model->tokenize(ss.str(), false, false);
    question.resize(std::min<size_t>(question.size(), 256));
  } catch (const std::exception&) {
    // A vocabulary without text conversion: the model's own samples stand for both.
    const std::vector<Token> text = sample_tokens(*model, n_tokens + 128, 99);
    doc = slice(text, 0, n_tokens);
    question = slice(text, n_tokens, n_tokens + 128);
  }
  const int n_q = static_cast<int>(question.size());

  // Logits of each question position, question prefilled globally after the document.
  auto run = [&](const std::string& mode, int star_block, double& prefill_s) {
    hcattn::ContextOptions co;
    co.n_ctx = n_tokens + n_q + 8;
    co.n_batch = 512;
    co.kv.mode = mode;
    co.kv.star_block = star_block;
    if (const char* sinks = std::getenv("HCATTN_KV_PHASES_SINKS")) co.kv.sinks = std::atoi(sinks);
    auto ctx = model->create_context(co);
    const auto t0 = std::chrono::steady_clock::now();
    ctx->prefill(doc);
    prefill_s = seconds_since(t0);
    std::vector<std::vector<float>> rows;
    for (Token t : question) {
      ctx->prefill({t}, {}, nullptr, {true});
      rows.push_back(hcattn::log_softmax(ctx->logits().data(), n_vocab));
    }
    return rows;
  };
  if (std::getenv("HCATTN_KV_PHASES_TIME_ONLY")) {
    // Prefill time only (the full reference is quadratic too): the document at 25% per star block.
    for (int star : blocks) {
      double s = 0;
      const double cpu0 = cpu_seconds();
      run("25%", star, s);
      const double cpu_s = cpu_seconds() - cpu0;
      std::printf("%d tokens, 25%% star block %4d: prefill %.2f s wall, %.2f s CPU (%.0f tok/s)\n", n_tokens, star, s,
                  cpu_s, n_tokens / s);
      std::fflush(stdout);
    }
    return 0;
  }
  double full_s = 0;
  const auto ref = run("full", 0, full_s);
  std::printf("%d tokens: full cache prefill %.2f s\n", n_tokens, full_s);
  for (int star : blocks) {
    double s = 0;
    const auto got = run("25%", star, s);
    int agree = 0;
    double kl = 0;
    for (int i = 0; i < n_q; ++i) {
      agree += argmax(ref[i].data(), n_vocab) == argmax(got[i].data(), n_vocab);
      for (int v = 0; v < n_vocab; ++v) kl += std::exp(ref[i][v]) * (ref[i][v] - got[i][v]);
    }
    std::printf("25%% star block %4d: prefill %.2f s (%.0f tok/s); question top-1 agreement with full %d/%d, mean KL %.3e\n",
                star, s, n_tokens / s, agree, n_q, kl / n_q);
  }
  return 0;
}

}  // namespace

int main() {
  if (const char* m = std::getenv("HCATTN_KV_PHASES_MODEL")) {
    const char* n = std::getenv("HCATTN_KV_PHASES_TOKENS");
    std::vector<int> blocks = {0, 1024, 2048, 4096};
    if (const char* b = std::getenv("HCATTN_KV_PHASES_BLOCKS")) {
      blocks.clear();
      for (std::stringstream list(b); list.good();) {
        int v;
        if (list >> v) blocks.push_back(v);
        list.ignore(1);
      }
    }
    return measure(m, n ? std::atoi(n) : 8192, blocks);
  }
  const std::string path = hcattn_test::fixture_or_skip("stories260K.gguf");
  if (path.empty()) return 77;
  return equivalence_checks(path);
}
