// HCAttention on real trained weights (stories260K): sequences sampled from the model itself, every
// position decoded one token at a time with the full cache and with each budget; next-token top-1
// agreement with the full cache and the mean KL divergence from it. The recent window (16) and the
// calibration (first 128 keys) are smaller than the defaults so that three quarters of the positions
// really go through key codes and selection (codebooks calibrated on the context; the built-in ones,
// trained on a code text, are measured too). Targets: 99% at 25% and 97% at 12.5%. What decided them
// at 12.5% was the selection, not the tail estimate or the weights: with exact scores for the selection
// only, 99.6%; with exact scores for the tail only, 94.4%; with neither, 93.9%. Keeping every token whose
// score bound (code residual levels, kv/codebook.h) reaches the cut gives 99.5% (KL 3.4e-4), and sharing
// one selection between the query heads of a KV head (the default) 99.7% (KL 1.3e-4).
// Value caps of 384 and 256 of the 512 positions (tokens evicted for good) in each eviction order: the
// floors sit a few points under what each measured, and the default order measured best (kv::Eviction).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "hcattn/engine.h"
#include "kv_test_util.h"
#include "test_util.h"

namespace {

std::vector<float> log_probs(const std::vector<float>& logits) { return hcattn::log_softmax(logits.data(), static_cast<int>(logits.size())); }

int argmax(const std::vector<float>& v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

int main() {
  const std::string path = hcattn_test::fixture_or_skip("stories260K.gguf");
  if (path.empty()) return 77;
  auto model = hcattn::Model::load(path, {2});
  const int n_pos = 512, n_seq = 4;

  // Sequences from the model's own sampling (full cache, fixed seeds), starting at BOS.
  std::vector<std::vector<hcattn::Token>> seqs;
  for (int s = 0; s < n_seq; ++s) {
    hcattn::ContextOptions co;
    co.n_ctx = n_pos;
    auto ctx = model->create_context(co);
    ctx->prefill({model->info().bos});
    hcattn::GenerateOptions g;
    g.max_tokens = n_pos - 1;
    g.sampling.temperature = 1.0f;
    g.sampling.top_k = 0;
    g.sampling.top_p = 1.0f;
    g.sampling.seed = 1000 + s;
    g.stop_tokens = {};
    ctx->generate(g);
    seqs.push_back(ctx->tokens());
  }

  // Per-position log-probabilities of the next token, decoding one token at a time.
  auto decode_all = [&](const hcattn::KvOptions& kv, const std::vector<hcattn::Token>& seq) {
    hcattn::ContextOptions co;
    co.n_ctx = n_pos;
    co.kv = kv;
    auto ctx = model->create_context(co);
    std::vector<std::vector<float>> out;
    for (hcattn::Token t : seq) out.push_back(log_probs(ctx->decode(t)));
    return out;
  };

  hcattn::KvOptions full;
  struct Case {
    const char* mode;
    const char* codebooks;
    double required;
    int centroids = 1024;
    // 0: every decode step selects, which is what these figures measure; the engine's default (0.9) lets a
    // KV head whose selection kept nearly all tokens attend to all of them exactly for its next steps.
    float dense_share = 0.0f;
    int value_cap = 0;  // positions held at most (0: all); past it tokens are evicted in `eviction` order
    const char* eviction = "mean-mass";
  };
  // Built-in codebooks at 25% miss the target by one position with the default margin of 3 logits
  // (98.99%, KL 5.0e-4; margin 6: 99.68%, KL 1.4e-5), so their floor is 98.5%.
  // The engine's default of 256 centroids also scores with 8-bit LUTs where the CPU has AVX-512 VBMI
  // (kv/code_tiles.h).
  for (const Case& c : {Case{"50%", "workspace", 0.99}, Case{"25%", "workspace", 0.99}, Case{"12.5%", "workspace", 0.97},
                        Case{"25%", "builtin", 0.985}, Case{"12.5%", "builtin", 0.97}, Case{"25%", "workspace", 0.99, 256},
                        Case{"12.5%", "workspace", 0.97, 256}, Case{"12.5%", "workspace", 0.97, 256, 0.9f},
                        Case{"25%", "workspace", 0.90, 256, 0.0f, 384}, Case{"25%", "workspace", 0.86, 256, 0.0f, 384, "mass"},
                        Case{"25%", "workspace", 0.86, 256, 0.0f, 384, "oldest"}, Case{"25%", "workspace", 0.72, 256, 0.0f, 256},
                        Case{"25%", "workspace", 0.68, 256, 0.0f, 256, "mass"}, Case{"25%", "workspace", 0.64, 256, 0.0f, 256, "oldest"}}) {
    hcattn::KvOptions kv;
    kv.mode = c.mode;
    kv.codebooks = c.codebooks;
    kv.recent = 16;
    kv.sinks = 4;
    kv.calibration_tokens = 128;
    kv.centroids = c.centroids;
    kv.dense_share = c.dense_share;
    kv.value_cap = c.value_cap;
    kv.eviction = c.eviction;
    int agree = 0, total = 0;
    double kl_sum = 0;
    bool finite = true;
    for (const auto& seq : seqs) {
      const auto ref = decode_all(full, seq);
      const auto got = decode_all(kv, seq);
      for (size_t p = 0; p < seq.size(); ++p) {
        agree += argmax(ref[p]) == argmax(got[p]);
        ++total;
        double kl = 0;
        for (size_t i = 0; i < ref[p].size(); ++i) {
          kl += std::exp(ref[p][i]) * (ref[p][i] - got[p][i]);
          finite &= std::isfinite(got[p][i]);
        }
        kl_sum += kl;
      }
    }
    const double rate = static_cast<double>(agree) / total;
    const std::string cap = c.value_cap > 0 ? ", value cap " + std::to_string(c.value_cap) + " (" + c.eviction + ")" : "";
    std::printf("stories260K %-5s %-9s codebooks, %4d centroids%s%s: top-1 agreement with full %.2f%% (%d/%d positions), mean KL %.2e\n",
                c.mode, c.codebooks, c.centroids, c.dense_share > 0 ? ", dense steps" : "", cap.c_str(), 100 * rate, agree, total, kl_sum / total);
    CHECK(finite);
    CHECK(rate >= c.required);
  }
  return test_summary("kv_fidelity");
}
