// Built-in key codebooks: trained once per model and KV config on the keys of a prefill of a fixed code
// text, kept in memory by the model and on disk in a cache folder, and given to every context that asks
// for them (KvOptions::codebooks = "builtin"). A context's cache is then a function of its tokens and the
// model alone: no context trains codebooks on its own keys, and every layer uses codes from position 0.
//
// Cache file: "<dir>/codebooks-<key>.hckv", a KV snapshot of zero tokens whose codebooks sections hold
// the codebooks (kv/snapshot.h: checksums per section, atomic write). <key> is a SHA-256 of everything the
// training depends on (model digest, budget, codebook size, calibration tokens, seed, rotation span, the
// text and the file layout), so a changed model or setting never reads another's file. A file that is
// damaged or does not match is trained again and replaced.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cpu/threadpool.h"
#include "kv/codebook.h"
#include "kv/hc_cache.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace hcattn::engine {

std::string_view builtin_calibration_text();

// How a set of built-in codebooks was obtained.
struct BuiltinCodebookStats {
  std::string source;    // "disk" (read from the cache folder) or "trained"
  std::string path;      // the cache file ("" without a cache folder)
  std::string note;      // why a cache file was not used or not written ("" when it was)
  double seconds = 0;    // time to read or to prefill + train (+ write)
  int tokens = 0;        // calibration tokens prefilled (when trained)
};

using CodebookSet = std::shared_ptr<const std::vector<kv::KeyCodebook>>;

// The cache key of a model digest and config: hex SHA-256.
std::string builtin_codebook_key(const std::string& model_digest, const kv::HcConfig& config, int rotation_span);

// Reads the codebooks from cache_dir, or prefills the built-in text on the CPU (under the caller's
// compute lock) with an exact cache, trains them (rotation span = the model's training context) and
// writes them there. tokenizer may be null (a vocabulary without text conversion): the text's bytes then
// stand for token ids. Writing problems do not fail the call (stats->note says why).
CodebookSet load_or_train_builtin_codebooks(const model::Llama& llama, cpu::ThreadPool& pool, const Tokenizer* tokenizer,
                                            const std::string& model_digest, const kv::HcConfig& config,
                                            const std::string& cache_dir, BuiltinCodebookStats* stats = nullptr);

// The codebooks of a valid cache file in cache_dir, or null (no folder, no file, a damaged or foreign one).
CodebookSet read_builtin_codebooks(const model::KvShape& shape, const std::string& model_digest, const kv::HcConfig& config,
                                   int rotation_span, const std::string& cache_dir);

// The SHA-256 a snapshot records for these codebooks (kv::HcKvCache::codebook_digest()).
std::string codebook_set_digest(const model::KvShape& shape, const kv::HcConfig& config, const CodebookSet& books);

}  // namespace hcattn::engine
