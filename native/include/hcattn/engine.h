// The engine's C++ API: the only header the addon and hcattn-cli include.
//
// A Model is a loaded GGUF (weights memory-mapped, tokenizer, thread pool). A Context is one token
// sequence evaluated by that model: its KV cache, its positions and the logits after its last token.
// Contexts of one model may live side by side; the model runs one computation at a time.
// Every failure a caller can cause (bad file, bad argument, full context) throws std::runtime_error
// (hcattn::Error inside the engine) with a message that says what to do.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hcattn {

using Token = int32_t;

// How this build and this machine can run the engine.
struct BuildInfo {
  std::string version;     // engine version
  std::string simd;        // SIMD level kernels run at here: "avx512", "avx2" or "scalar"
  bool cuda_compiled = false;
  int cuda_devices = 0;    // usable CUDA devices (0 when not compiled or none present)
  std::string cuda_note;   // why CUDA is not used, when it is not
};

BuildInfo build_info();

struct ModelOptions {
  int threads = 0;           // CPU threads; 0: all hardware threads
  // Where the forward pass runs: "auto" (CUDA when this build has it and a usable GPU is present,
  // else the CPU), "cpu" or "cuda". An explicit "cuda" that cannot be honoured (no CUDA in this
  // build, no GPU or driver, a weight type the GPU kernels lack, too little GPU memory) loads on the
  // CPU instead and says why in ModelInfo::device_note.
  std::string device = "auto";
};

// What a loaded model is (DESIGN §4 engine/load answer).
struct ModelInfo {
  std::string name;          // general.name, else the file name
  std::string architecture;  // "llama"
  std::string quantization;  // llama.cpp's file type name ("Q4_K_M", "Q8_0", "F32", ...)
  int64_t parameters = 0;    // elements over all tensors
  int64_t file_bytes = 0;
  int n_ctx_train = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_vocab = 0;
  Token bos = -1;
  Token eos = -1;
  std::string digest;        // sha256 (hex) of metadata, tensor table and samples of every tensor's data
  std::string device;        // where the forward pass runs: "cpu" or "cuda"
  std::string device_name;   // that device in words (GPU name and memory, or CPU SIMD level and threads)
  std::string device_note;   // why CUDA is not used although it was requested or found ("" otherwise)
};

enum class KvType { F32, F16 };

// The KV cache of a context (DESIGN §5). "full" keeps every key and value exactly (the reference path,
// stored as kv_type); "50%", "25%" and "12.5%" are HCAttention budgets: the fast tier relative to f16
// K+V (f16 keys at 50%, key codes of d/2 or d/4 groups below), values and exact keys in the host tier,
// and per step a top-p selection of the tokens each query reads.
struct KvOptions {
  std::string mode = "full";     // "full" | "50%" | "25%" | "12.5%"
  float top_p = 0.995f;          // softmax mass the selection keeps (0.9 drops too much: see kv_fidelity)
  int sinks = 4;                 // first tokens, always attended
  int recent = 64;               // last tokens, always attended
  int k_max = 0;                 // cap on the top-p part of a selection (0: none)
  float margin = 3.0f;           // also keep tokens within this many logits of the top-p cut
  // Factor on the key codes' worst-case residual bound (kv::HcConfig::bound_scale): 1 keeps every token
  // whose exact score could reach the cut, 0 trusts the approximate scores.
  float bound_scale = 1.0f;
  int centroids = 256;           // codebook size per key group
  int calibration_tokens = 1024; // keys that train each layer's codebooks
  // "builtin": codebooks trained once per model and KV config on the keys of a prefill of a built-in code
  // text (in the first forward pass that needs them; cached in memory and in
  // ContextOptions::codebook_cache_dir), used from the first position on; "workspace": trained on the
  // context's own first calibration_tokens keys. Measured top-1 agreement with the full cache, workspace vs
  // built-in: stories260K 1877 positions 99.52% vs 98.99% at 25% and 99.68% vs 99.63% at 12.5%; tiny-hd128
  // 252 vs 251 of 256 at 25%. Built-in trains once per model instead of once per context (a context's
  // first 2048-token prefill 4.7 s vs 11.5 s), but workspace wins at the default budget, so it is the default.
  std::string codebooks = "workspace";
  // > 0: prefill calls without `global` use star-attention blocks of this many positions (PrefillOptions);
  // 0: every prefill query uses the selection (quadratic in the context). 4096: question agreement with the
  // full cache after an 8k star-prefilled prefix (tiny-hd128) 99.2% vs 98.4% at 2048 and 96.5% at 1024, and
  // a context of up to 8k tokens is attended almost exactly (anchor + own block); prefill is linear.
  int star_block = 4096;
  bool rescore = true;           // exact scores (host-tier keys) for the selected tokens
  bool tail = true;              // estimate the unselected tokens' share from per-block mean values
  // A (layer, KV head) whose decode-step selection kept at least this share of its tokens attends exactly
  // to all of them for the next 15 steps, and for 15 more while the last one's exact scores would still
  // keep that share (kv::HcConfig::dense_share); 0: select at every step.
  float dense_share = 0.9f;
  // Most positions the cache holds (0: all): past it the tokens that drew the least attention so far are
  // evicted for good, never the sinks or the recent window (kv::HcConfig::value_cap); a snapshot saves the
  // tokens held.
  int value_cap = 0;
  // Which tokens go first under the value cap: "mean-mass" (least attention per later position),
  // "mass" (least accumulated attention, H2O) or "oldest" (kv::Eviction).
  std::string eviction = "mean-mass";
};

struct ContextOptions {
  int n_ctx = 0;             // positions the context can hold; 0: min(n_ctx_train, 4096)
  int n_batch = 512;         // tokens per prefill chunk (one batched matrix-matrix pass per chunk)
  KvType kv_type = KvType::F32;  // storage of the "full" cache
  KvOptions kv;
  // Folder for the built-in KV codebooks (one small .hckv file per model and KV config, written once,
  // atomically; a damaged one is trained again). "": kept in memory only.
  std::string codebook_cache_dir;
  // Model::load_context: serve the snapshot's keys and values from the mapped file instead of copying
  // them into RAM (new tokens still go to RAM). The file must not be rewritten in place meanwhile
  // (Context::save_snapshot replaces files by a rename, which is safe).
  bool map_snapshot_values = false;
};

// KV memory of a context as allocated (measured, not computed from a formula).
struct KvMemory {
  std::string mode;
  int64_t tokens = 0;
  size_t fast_bytes = 0;          // GPU memory or hot RAM: key codes (or f16 keys at 50%, all of K+V when full)
  size_t host_bytes = 0;          // host RAM: values and exact keys
  size_t disk_bytes = 0;          // values and exact keys read from a mapped snapshot file (map_snapshot_values)
  double f16_bytes_per_token = 0; // what an f16 K+V cache needs per token, the reference for the budgets
  // Share of the cached tokens the selection kept, over every query head, layer and step that selected
  // (questions and decode) since the context was made or loaded; -1 before any, and for "full".
  double selected_share = -1;
  // Share of the (layer, KV head) decode steps that attended every token without selecting, because the
  // head's last selection kept nearly all of them (KvOptions::dense_share); -1 before any decode step.
  double dense_step_share = -1;
  int64_t evicted_tokens = 0;  // tokens evicted for good to stay within KvOptions::value_cap
};

// A stretch of a context (system prompt, one file, one question) with the chained hash that identifies
// it together with everything before it. Segments tile the saved tokens in order.
struct SnapshotSegment {
  std::string id;
  std::string hash;
  int64_t begin = 0;  // token range [begin, end)
  int64_t end = 0;
};

struct PrefillProgress {
  int64_t done = 0;          // tokens of this call evaluated so far
  int64_t total = 0;         // tokens of this call
  double tokens_per_second = 0;
};
using ProgressFn = std::function<void(const PrefillProgress&)>;

// How the queries of one prefill call attend in a context whose kv.star_block > 0 (DESIGN §5):
//   global = false (the document phase): exact attention to the anchor (the first star_block positions)
//     and to the query's own aligned block of star_block positions; linear in the context, and the same whatever the call and chunk split.
//   global = true (the question phase): the top-p selection over the whole cache, as decode does.
// With star_block == 0 (and in "full" mode) both are the same: every query attends to the whole cache.
struct PrefillOptions {
  bool global = false;
};

// Sampling as llama.cpp's common sampler chain orders it: repetition penalty, top-k, top-p, temperature,
// then a draw. temperature <= 0 is greedy (argmax after the penalty).
struct SamplingParams {
  float temperature = 0.8f;
  int top_k = 40;                // <= 0: whole vocabulary
  float top_p = 0.95f;           // >= 1: off
  float repeat_penalty = 1.0f;   // 1: off
  int repeat_last_n = 64;        // how many recent tokens the penalty looks at
  uint64_t seed = 0;             // draws are reproducible for a given seed
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, int n_vocab);
  // Picks the next token from raw logits (n_vocab values) given the tokens accepted so far.
  Token sample(const float* logits);
  // Records a token of the sequence (prompt or generated) for the repetition penalty.
  void accept(Token token);

 private:
  SamplingParams params_;
  int n_vocab_;
  std::vector<Token> recent_;
  uint64_t rng_state_;
  struct Candidate {
    Token id;
    float logit;
  };
  std::vector<Candidate> candidates_;
  std::vector<float> penalized_;
  double next_uniform();
};

struct GenerateOptions {
  int max_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop;      // stop strings (not part of the returned text)
  std::vector<Token> stop_tokens;     // extra stop tokens; end-of-generation tokens always stop
};

struct GenerateStats {
  int prompt_tokens = 0;      // tokens in the context before generation
  int generated_tokens = 0;
  double seconds = 0;
  double tokens_per_second = 0;
};

struct GenerateResult {
  std::string text;
  std::vector<Token> tokens;
  std::string stop_reason;    // "eog" | "stop" | "length" | "context" | "cancelled"
  GenerateStats stats;
};

// Called with each generated token and the text it adds (complete UTF-8 only; text that may start a
// stop string is held back until it is known not to). At the end, text still held back (if any) comes
// in one last call with token -1, so the texts of all calls add up to GenerateResult::text.
using TokenFn = std::function<void(Token token, const std::string& text)>;

// Log-probabilities at one position: the K most likely next tokens, natural log, most likely first.
struct TopLogprobs {
  std::vector<std::pair<Token, float>> top;
};

class Model;

class Context {
 public:
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int n_ctx() const;
  int n_past() const;                        // tokens evaluated so far
  const std::vector<Token>& tokens() const;  // those tokens
  const std::vector<float>& logits() const;  // logits after the last token (empty before any)

  // Appends tokens in chunks of n_batch, calling progress after each chunk. Returns false when cancel
  // became true (checked before every chunk); the context then holds the chunks completed so far.
  bool prefill(const std::vector<Token>& tokens, const ProgressFn& progress = {},
               const std::atomic<bool>* cancel = nullptr, const PrefillOptions& options = {});
  // Appends one token and returns the logits after it (global attention).
  const std::vector<float>& decode(Token token);
  // Appends tokens and returns the logits after every one of them: tokens.size() rows of n_vocab.
  // Attends as prefill() without `global` does.
  std::vector<float> eval_logits(const std::vector<Token>& tokens, const std::atomic<bool>* cancel = nullptr);
  // Samples up to options.max_tokens tokens after the current ones (the context must not be empty).
  GenerateResult generate(const GenerateOptions& options, const TokenFn& on_token = {},
                          const std::atomic<bool>* cancel = nullptr);

  // Keeps the first n tokens (their KV entries stay exact); the logits are cleared.
  void truncate(int n);
  KvMemory kv_memory() const;
  // Saves the KV cache and tokens to a .hckv snapshot (atomic: temp file, fsync, rename). Needs an
  // HCAttention budget; segments may be empty or must tile [0, n_past()).
  void save_snapshot(const std::string& path, const std::vector<SnapshotSegment>& segments) const;
  // A new context holding a copy of the first n_prefix tokens of this one (n_prefix < 0: all).
  std::unique_ptr<Context> fork(int n_prefix = -1) const;

 private:
  friend class Model;
  struct Impl;
  explicit Context(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Model : public std::enable_shared_from_this<Model> {
 public:
  // Maps and validates the file, reads hyperparameters, weights and tokenizer. Throws on any problem.
  static std::shared_ptr<Model> load(const std::string& path, const ModelOptions& options = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const;
  int threads() const;

  std::vector<Token> tokenize(std::string_view text, bool add_bos, bool parse_special) const;
  std::string token_to_piece(Token token, bool special = false) const;
  std::string detokenize(const std::vector<Token>& tokens, bool special = false) const;
  bool is_end_of_generation(Token token) const;

  std::unique_ptr<Context> create_context(const ContextOptions& options = {});
  // A context restored from a snapshot of this model with the same KV options, keeping its first
  // keep_tokens positions (-1: all; otherwise 0 or a segment boundary). Throws with a message naming
  // the problem for a damaged file, another model, or other KV settings. segments receives the kept ones.
  std::unique_ptr<Context> load_context(const std::string& path, const ContextOptions& options, int64_t keep_tokens = -1,
                                        std::vector<SnapshotSegment>* segments = nullptr);

  struct Impl;

 private:
  Model();
  std::unique_ptr<Impl> impl_;
  friend class Context;
};

// Natural-log softmax of n logits (in double, as the oracle tests compare it).
std::vector<float> log_softmax(const float* logits, int n);
// The k largest log-probabilities of n logits, most likely first (ties: lower id first).
TopLogprobs top_logprobs(const float* logits, int n, int k);

}  // namespace hcattn
