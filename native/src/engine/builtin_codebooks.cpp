#include "engine/builtin_codebooks.h"

#include <sys/stat.h>

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "engine/sha256.h"
#include "kv/snapshot.h"
#include "model/kv_cache.h"
#include "quant/types.h"

namespace hcattn::engine {

namespace {

// Bumped when the cache file's meaning changes (what the training reads, how the file is laid out).
constexpr int kCacheLayout = 2;  // 2: centroids rounded to f16 before the residual radii are measured
constexpr int kChunk = 256;  // calibration prefill chunk

// Records each layer's post-RoPE keys while an exact cache does the attention.
class RecordingCache final : public model::KvCache {
 public:
  RecordingCache(const model::KvShape& shape, int capacity)
      : shape_(shape), exact_(model::make_full_kv_cache(shape, capacity, model::KvStorage::F32)), keys_(shape.n_layer) {}

  int capacity() const override { return exact_->capacity(); }
  model::KvBytes bytes() const override { return exact_->bytes(); }
  void store(int layer, int pos, int n_tokens, const float* k, const float* v) override {
    const size_t row = static_cast<size_t>(shape_.n_head_kv) * shape_.head_dim;
    std::vector<float>& dst = keys_[layer];
    dst.resize((static_cast<size_t>(pos) + n_tokens) * row);
    std::memcpy(&dst[static_cast<size_t>(pos) * row], k, static_cast<size_t>(n_tokens) * row * sizeof(float));
    exact_->store(layer, pos, n_tokens, k, v);
  }
  void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) override {
    exact_->attend(layer, pos, n_tokens, q, out, pool);
  }
  std::unique_ptr<model::KvCache> clone_prefix(int) const override {
    throw Error("the calibration cache cannot be copied (internal error)");
  }

  // Keys of one KV head, (n, d), rounded to f16 as an HCAttention cache stores them before it trains.
  std::vector<float> head_keys(int layer, int kvh, int n) const {
    const int d = shape_.head_dim;
    const size_t row = static_cast<size_t>(shape_.n_head_kv) * d;
    std::vector<float> out(static_cast<size_t>(n) * d);
    for (int t = 0; t < n; ++t)
      for (int i = 0; i < d; ++i)
        out[static_cast<size_t>(t) * d + i] =
            quant::fp16_to_fp32(quant::fp32_to_fp16(keys_[layer][t * row + static_cast<size_t>(kvh) * d + i]));
    return out;
  }

 private:
  model::KvShape shape_;
  std::unique_ptr<model::KvCache> exact_;
  std::vector<std::vector<float>> keys_;  // per layer: (n, n_head_kv * d)
};

// n tokens of the built-in text (repeated when it is shorter). Without a text tokenizer its bytes stand
// for token ids, which still gives the model's keys for a varied, fixed input.
std::vector<int32_t> calibration_ids(const Tokenizer* tokenizer, int n_vocab, int n) {
  const std::string_view text = builtin_calibration_text();
  std::vector<int32_t> base;
  if (tokenizer) {
    base = tokenizer->encode(text, true, false);
  } else {
    for (unsigned char c : text) base.push_back(static_cast<int32_t>(c % n_vocab));
  }
  std::vector<int32_t> ids = base;
  while (static_cast<int>(ids.size()) < n) ids.insert(ids.end(), base.begin() + 1, base.end());
  ids.resize(n);
  return ids;
}

kv::HcConfig preset_config(const kv::HcConfig& config, const CodebookSet& books) {
  kv::HcConfig c = config;
  c.codebook_source = kv::CodebookSource::Preset;
  c.codebooks = books;
  return c;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The codebooks of a cache file, or null with `why` set when it is missing, damaged or another's.
CodebookSet read_cache_file(const std::string& path, const std::string& model_digest, const model::KvShape& shape,
                            const kv::HcConfig& config, std::string& why) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    why = "no cache file yet";
    return nullptr;
  }
  try {
    kv::SnapshotReader in(path);
    const kv::SnapshotInfo& info = in.info();
    const kv::HcConfig& c = info.config;
    const bool same = info.model_digest == model_digest && c.budget == config.budget && c.centroids == config.centroids &&
                      c.calibration_tokens == config.calibration_tokens && c.seed == config.seed &&
                      c.codebook_source == kv::CodebookSource::Preset && info.shape.n_layer == shape.n_layer &&
                      info.shape.n_head_kv == shape.n_head_kv && info.shape.head_dim == shape.head_dim &&
                      info.tokens.empty();
    if (!same) {
      why = "cache file '" + path + "' was written for another model or KV setting; trained again";
      return nullptr;
    }
    auto books = std::make_shared<const std::vector<kv::KeyCodebook>>(kv::make_hc_kv_cache_from_snapshot(in, 1, 0)->codebooks());
    if (books->size() != static_cast<size_t>(shape.n_layer) * shape.n_head_kv) {
      why = "cache file '" + path + "' does not hold every layer's codebooks; trained again";
      return nullptr;
    }
    return books;
  } catch (const std::exception& e) {
    why = std::string(e.what()) + "; trained again";
    return nullptr;
  }
}

}  // namespace

std::string builtin_codebook_key(const std::string& model_digest, const kv::HcConfig& config, int rotation_span) {
  Sha256 text;
  const std::string_view t = builtin_calibration_text();
  text.update(t.data(), t.size());
  const std::string key = "hcattn builtin codebooks " + std::to_string(kCacheLayout) + " model " + model_digest + " budget " +
                          kv::key_budget_name(config.budget) + " centroids " + std::to_string(config.centroids) +
                          " calibration " + std::to_string(config.calibration_tokens) + " seed " + std::to_string(config.seed) +
                          " span " + std::to_string(rotation_span) + " text " + text.hex_digest();
  Sha256 sha;
  sha.update(key.data(), key.size());
  return sha.hex_digest();
}

std::string builtin_codebook_path(const std::string& cache_dir, const std::string& model_digest, const kv::HcConfig& config,
                                  int rotation_span) {
  return cache_dir + "/codebooks-" + builtin_codebook_key(model_digest, config, rotation_span).substr(0, 32) + ".hckv";
}

CodebookSet read_builtin_codebooks(const model::KvShape& shape, const std::string& model_digest, const kv::HcConfig& config,
                                   int rotation_span, const std::string& cache_dir) {
  std::string why;
  if (cache_dir.empty()) return nullptr;
  return read_cache_file(builtin_codebook_path(cache_dir, model_digest, config, rotation_span), model_digest, shape, config, why);
}

CodebookSet load_or_train_builtin_codebooks(const model::Llama& llama, cpu::ThreadPool& pool, const Tokenizer* tokenizer,
                                            const std::string& model_digest, const kv::HcConfig& config,
                                            const std::string& cache_dir, BuiltinCodebookStats* stats) {
  BuiltinCodebookStats local;
  BuiltinCodebookStats& st = stats ? *stats : local;
  const auto t0 = std::chrono::steady_clock::now();
  const model::Hparams& h = llama.hparams();
  const model::KvShape shape = llama.kv_shape();
  const int span = h.n_ctx_train;
  st.path = cache_dir.empty() ? "" : builtin_codebook_path(cache_dir, model_digest, config, span);

  if (!st.path.empty()) {
    if (CodebookSet books = read_cache_file(st.path, model_digest, shape, config, st.note)) {
      st.source = "disk";
      st.seconds = seconds_since(t0);
      return books;
    }
  }

  // Prefill of the built-in text with exact attention, recording every layer's keys.
  const int n = std::max(1, std::min(config.calibration_tokens, h.n_ctx_train));
  const std::vector<int32_t> ids = calibration_ids(tokenizer, h.n_vocab, n);
  RecordingCache rec(shape, n);
  model::Activations act(h, std::min(n, kChunk));
  std::vector<float> logits(h.n_vocab);
  for (int done = 0; done < n; done += kChunk) {
    const int m = std::min(kChunk, n - done);
    llama.forward(ids.data() + done, m, done, rec, act, pool, false, logits.data());
  }

  // One k-means per (layer, KV head), spread over the pool.
  auto books = std::make_shared<std::vector<kv::KeyCodebook>>(static_cast<size_t>(shape.n_layer) * shape.n_head_kv);
  pool.parallel_for(static_cast<int64_t>(books->size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const int layer = static_cast<int>(i / shape.n_head_kv), kvh = static_cast<int>(i % shape.n_head_kv);
      const std::vector<float> keys = rec.head_keys(layer, kvh, n);
      (*books)[i] = kv::train_key_codebook(shape, config, keys.data(), n, layer, kvh, span);
    }
  });
  CodebookSet set = books;
  st.source = "trained";
  st.tokens = n;

  if (!st.path.empty()) {
    try {
      ::mkdir(cache_dir.c_str(), 0755);  // an existing folder is fine; other failures show in the save
      auto cache = kv::make_hc_kv_cache(shape, 1, preset_config(config, set));
      kv::save_snapshot(st.path, *cache, model_digest, {}, {});
    } catch (const std::exception& e) {
      st.note = std::string("built-in codebooks not cached on disk: ") + e.what();
    }
  }
  st.seconds = seconds_since(t0);
  return set;
}

std::string codebook_set_digest(const model::KvShape& shape, const kv::HcConfig& config, const CodebookSet& books) {
  return kv::make_hc_kv_cache(shape, 1, preset_config(config, books))->codebook_digest();
}

}  // namespace hcattn::engine
