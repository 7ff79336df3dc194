// Model and Context: the engine API of hcattn/engine.h on top of the GGUF reader, the tokenizer and
// the llama forward pass.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include "common/error.h"
#include "cpu/threadpool.h"
#include "engine/backend.h"
#include "engine/builtin_codebooks.h"
#include "engine/sha256.h"
#include "gguf/gguf.h"
#include "hcattn/engine.h"
#include "kv/hc_cache.h"
#include "kv/snapshot.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "quant/types.h"
#include "tokenizer/tokenizer.h"

namespace hcattn {

struct Model::Impl {
  std::unique_ptr<gguf::File> file;
  std::unique_ptr<model::Llama> llama;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the file's vocabulary cannot be used for text
  std::string tokenizer_error;           // why, then
  std::unique_ptr<cpu::ThreadPool> pool;
  std::unique_ptr<engine::Backend> backend;  // where forward passes run (options.device)
  ModelInfo info;
  ModelOptions options;
  std::mutex compute;                    // the pool runs one forward pass at a time
  std::mutex codebooks_mutex;            // guards builtin_codebooks; taken before compute
  std::map<std::string, engine::CodebookSet> builtin_codebooks;  // by engine::builtin_codebook_key

  // The built-in codebooks for this config: from memory, else the cache folder, else (when train) trained
  // now with a calibration prefill on the CPU. Null when absent and not trained.
  engine::CodebookSet builtin_codebooks_for(const kv::HcConfig& config, const std::string& cache_dir, bool train) {
    std::lock_guard<std::mutex> lock(codebooks_mutex);
    const std::string key = engine::builtin_codebook_key(info.digest, config, llama->hparams().n_ctx_train);
    if (auto it = builtin_codebooks.find(key); it != builtin_codebooks.end()) return it->second;
    engine::CodebookSet books;
    if (train) {
      std::lock_guard<std::mutex> busy(compute);
      books = engine::load_or_train_builtin_codebooks(*llama, *pool, tokenizer.get(), info.digest, config, cache_dir);
    } else {
      // Reading only: a missing or damaged file yields nothing rather than a training run.
      books = engine::read_builtin_codebooks(llama->kv_shape(), info.digest, config, llama->hparams().n_ctx_train, cache_dir);
    }
    if (books) builtin_codebooks.emplace(key, books);
    return books;
  }

  const Tokenizer& text_tokenizer() const {
    if (!tokenizer) throw Error("this model's vocabulary cannot convert text: " + tokenizer_error);
    return *tokenizer;
  }
};

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// llama.cpp's names for general.file_type (FORMATS §1.5).
std::string file_type_name(uint64_t ft) {
  switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "type " + std::to_string(ft);
  }
}

// The type holding most weight elements, for files without general.file_type.
std::string dominant_type(const gguf::File& f) {
  std::vector<int64_t> elems(64, 0);
  for (const gguf::TensorInfo& t : f.tensors()) {
    const auto id = static_cast<size_t>(t.type);
    if (id < elems.size()) elems[id] += t.ne[0] * t.rows();
  }
  const auto best = static_cast<int32_t>(std::max_element(elems.begin(), elems.end()) - elems.begin());
  return quant::type_name(static_cast<quant::GgmlType>(best));
}

// A fingerprint that changes with any metadata, the tensor table, or the data (sampled: the first and
// last 4 KiB of every tensor), and costs milliseconds even for a 5 GB file.
std::string model_digest(const gguf::File& f) {
  engine::Sha256 sha;
  const uint64_t size = f.size();
  sha.update(&size, sizeof size);
  for (const auto& [key, v] : f.metadata()) {
    sha.update(key.data(), key.size());
    sha.update(&v.type, sizeof v.type);
    sha.update(&v.i, sizeof v.i);
    sha.update(&v.u, sizeof v.u);
    sha.update(&v.f, sizeof v.f);
    sha.update(v.str.data(), v.str.size());
    for (std::string_view s : v.strs) sha.update(s.data(), s.size() + 1);
    if (!v.ints.empty()) sha.update(v.ints.data(), v.ints.size() * sizeof(int64_t));
    if (!v.nums.empty()) sha.update(v.nums.data(), v.nums.size() * sizeof(double));
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    sha.update(t.name.data(), t.name.size() + 1);
    sha.update(&t.type, sizeof t.type);
    sha.update(t.ne, sizeof t.ne);
    sha.update(&t.offset, sizeof t.offset);
    const size_t sample = std::min<size_t>(t.nbytes, 4096);
    sha.update(t.data, sample);
    sha.update(t.data + (t.nbytes - sample), sample);
  }
  return sha.hex_digest();
}

ModelInfo describe(const gguf::File& f, const model::Llama& llama, const Tokenizer* tok) {
  const model::Hparams& h = llama.hparams();
  ModelInfo info;
  std::string base = f.path();
  if (const size_t slash = base.find_last_of("/\\"); slash != std::string::npos) base = base.substr(slash + 1);
  info.name = f.get_string_or("general.name", base);
  info.architecture = f.get_string("general.architecture");
  const gguf::Value* ft = f.find("general.file_type");
  info.quantization = ft ? file_type_name(f.get_uint("general.file_type")) : dominant_type(f);
  for (const gguf::TensorInfo& t : f.tensors()) info.parameters += t.ne[0] * t.rows();
  info.file_bytes = static_cast<int64_t>(f.size());
  info.n_ctx_train = h.n_ctx_train;
  info.n_embd = h.n_embd;
  info.n_layer = h.n_layer;
  info.n_head = h.n_head;
  info.n_head_kv = h.n_head_kv;
  info.head_dim = h.head_dim;
  info.n_ff = h.n_ff;
  info.n_vocab = h.n_vocab;
  if (tok) {
    info.bos = tok->bos();
    info.eos = tok->eos();
  } else {
    info.bos = static_cast<Token>(f.get_uint_or("tokenizer.ggml.bos_token_id", static_cast<uint64_t>(-1)));
    info.eos = static_cast<Token>(f.get_uint_or("tokenizer.ggml.eos_token_id", static_cast<uint64_t>(-1)));
  }
  info.digest = model_digest(f);
  return info;
}

}  // namespace

namespace {

// The HCAttention settings of a context's KV options (mode is one of the budgets).
kv::HcConfig hc_config(const KvOptions& o) {
  kv::HcConfig c;
  c.budget = kv::parse_key_budget(o.mode);
  c.centroids = o.centroids;
  c.select.top_p = o.top_p;
  c.select.sinks = o.sinks;
  c.select.recent = o.recent;
  c.select.k_max = o.k_max;
  c.select.margin = o.margin;
  c.bound_scale = o.bound_scale;
  c.rescore = o.rescore;
  c.tail = o.tail;
  c.dense_share = o.dense_share;
  c.value_cap = o.value_cap;
  if (o.eviction == "mean-mass") {
    c.eviction = kv::Eviction::MeanMass;
  } else if (o.eviction == "mass") {
    c.eviction = kv::Eviction::Mass;
  } else if (o.eviction == "oldest") {
    c.eviction = kv::Eviction::Oldest;
  } else {
    throw Error("kv eviction must be \"mean-mass\", \"mass\" or \"oldest\", got \"" + o.eviction + "\"");
  }
  c.calibration_tokens = o.calibration_tokens;
  c.star_block = o.star_block;
  if (o.codebooks == "builtin") {
    c.codebook_source = kv::CodebookSource::Preset;
  } else if (o.codebooks != "workspace") {
    throw Error("kv codebooks must be \"builtin\" or \"workspace\", got \"" + o.codebooks + "\"");
  }
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) throw Error("kv top_p must be in (0, 1], got " + std::to_string(o.top_p));
  if (!(o.dense_share >= 0.0f && o.dense_share <= 1.0f))
    throw Error("kv dense_share must be in [0, 1] (0: off), got " + std::to_string(o.dense_share));
  if (o.sinks < 0 || o.recent < 0 || o.k_max < 0 || o.margin < 0 || o.star_block < 0 || o.bound_scale < 0)
    throw Error("kv sinks, recent, k_max, margin, bound_scale and star_block must not be negative");
  if (o.calibration_tokens < 1) throw Error("kv calibration_tokens must be at least 1");
  return c;
}

}  // namespace

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

std::shared_ptr<Model> Model::load(const std::string& path, const ModelOptions& options) {
  std::shared_ptr<Model> m(new Model());
  Impl& im = *m->impl_;
  im.options = options;
  im.file = gguf::File::open(path);
  // The huge-page copy of the weights speeds up the CPU backend; a GPU takes its own copy from the file
  // mapping, so when one will be used the host copy would only double the resident memory.
  const bool gpu_likely = options.device != "cpu" && engine::cuda_unavailable_reason().empty();
  im.llama = std::make_unique<model::Llama>(*im.file, /*weights_on_huge_pages=*/!gpu_likely);
  try {
    im.tokenizer = Tokenizer::from_gguf(*im.file);
  } catch (const std::exception& e) {
    // Token-id evaluation still works (the oracle tests use it on placeholder vocabularies).
    im.tokenizer_error = e.what();
  }
  im.pool = std::make_unique<cpu::ThreadPool>(options.threads);
  im.info = describe(*im.file, *im.llama, im.tokenizer.get());
  engine::BackendChoice choice = engine::select_backend(options.device, *im.llama, *im.pool);
  im.backend = std::move(choice.backend);
  im.info.device = im.backend->name();
  im.info.device_name = im.backend->description();
  im.info.device_note = choice.note;
  return m;
}

const ModelInfo& Model::info() const { return impl_->info; }
int Model::threads() const { return impl_->pool->size(); }

std::vector<Token> Model::tokenize(std::string_view text, bool add_bos, bool parse_special) const {
  return impl_->text_tokenizer().encode(text, add_bos, parse_special);
}

std::string Model::token_to_piece(Token token, bool special) const {
  return impl_->text_tokenizer().token_to_piece(token, special);
}

std::string Model::detokenize(const std::vector<Token>& tokens, bool special) const {
  return impl_->text_tokenizer().decode(tokens, special);
}

bool Model::is_end_of_generation(Token token) const {
  if (impl_->tokenizer) return impl_->tokenizer->is_end_of_generation(token);
  return token == impl_->info.eos;
}

// ---------------------------------------------------------------------------------------------------

struct Context::Impl {
  std::shared_ptr<Model> model;
  ContextOptions options;
  std::unique_ptr<model::KvCache> kv;
  std::unique_ptr<model::Activations> act;  // sized for the largest chunk so far (decode-only forks stay small)
  std::vector<Token> tokens;
  std::vector<float> logits;                // (n_vocab) after the last token

  const model::Llama& llama() const { return *model->impl_->llama; }
  model::Activations& activations(int n_tokens) {
    if (!act || act->n_batch < n_tokens) act = std::make_unique<model::Activations>(llama().hparams(), n_tokens);
    return *act;
  }
  void check_room(size_t n_new) const {
    if (tokens.size() + n_new > static_cast<size_t>(options.n_ctx)) {
      throw Error("context is full: " + std::to_string(tokens.size()) + " + " + std::to_string(n_new) +
                  " tokens exceed its " + std::to_string(options.n_ctx) + " positions; create it with a larger nCtx");
    }
  }
  // A context with built-in codebooks not yet trained for this model trains them (once per model and
  // config) before its first forward pass.
  void ensure_codebooks() {
    auto* hc = dynamic_cast<kv::HcKvCache*>(kv.get());
    if (!hc || !hc->needs_codebooks()) return;
    hc->install_codebooks(model->impl_->builtin_codebooks_for(hc->config(), options.codebook_cache_dir, true));
  }
  // Runs one chunk with the given attention phase; out receives all rows of logits when all_logits, else
  // the last row.
  void run_chunk(const Token* ids, int n, kv::AttendPhase phase, bool all_logits, float* out) {
    std::lock_guard<std::mutex> lock(model->impl_->compute);
    if (auto* hc = dynamic_cast<kv::HcKvCache*>(kv.get())) hc->set_phase(phase);
    engine::Backend& backend = *model->impl_->backend;
    backend.forward(ids, n, static_cast<int>(tokens.size()), *kv,
                    backend.uses_host_activations() ? &activations(n) : nullptr, all_logits, out);
    tokens.insert(tokens.end(), ids, ids + n);
  }
};

std::unique_ptr<Context> Model::create_context(const ContextOptions& options) {
  auto impl = std::make_unique<Context::Impl>();
  impl->model = shared_from_this();
  impl->options = options;
  if (impl->options.n_ctx <= 0) impl->options.n_ctx = std::min(impl_->info.n_ctx_train, 4096);
  if (impl->options.n_batch <= 0) throw Error("n_batch must be positive");
  impl->options.n_batch = std::min(impl->options.n_batch, impl->options.n_ctx);
  if (impl->options.kv.mode == "full") {
    impl->kv = impl_->backend->make_full_kv_cache(impl_->llama->kv_shape(), impl->options.n_ctx,
                                                  options.kv_type == KvType::F16 ? model::KvStorage::F16 : model::KvStorage::F32);
  } else {
    kv::HcConfig cfg = hc_config(impl->options.kv);
    if (cfg.codebook_source == kv::CodebookSource::Preset && kv::key_groups(cfg.budget, impl_->info.head_dim) > 0)
      // From memory or the cache folder only: training (a calibration prefill) waits for the first
      // forward pass, which the addon runs off the JavaScript thread (Context::Impl::ensure_codebooks).
      cfg.codebooks = impl_->builtin_codebooks_for(cfg, options.codebook_cache_dir, false);
    impl->kv = kv::make_hc_kv_cache(impl_->llama->kv_shape(), impl->options.n_ctx, cfg);
  }
  return std::unique_ptr<Context>(new Context(std::move(impl)));
}

std::unique_ptr<Context> Model::load_context(const std::string& path, const ContextOptions& options, int64_t keep_tokens,
                                             std::vector<SnapshotSegment>* segments) {
  if (options.kv.mode == "full") throw Error("KV snapshots need an HCAttention budget (50%, 25% or 12.5%), not \"full\"");
  // The cache made here is replaced by the snapshot's: create it with workspace codebooks so that no
  // built-in calibration runs for it.
  ContextOptions scratch = options;
  scratch.kv.codebooks = "workspace";
  std::unique_ptr<Context> ctx = create_context(scratch);
  ctx->impl_->options.kv.codebooks = options.kv.codebooks;
  const kv::HcConfig cfg = hc_config(options.kv);
  kv::LoadedSnapshot loaded = kv::load_snapshot(path, impl_->info.digest, impl_->llama->kv_shape(), cfg, ctx->n_ctx(), keep_tokens,
                                                options.map_snapshot_values);
  // Built-in codebooks are a function of the model and config, so a snapshot holding others was made by
  // another engine version: refuse it rather than mix two sets of codes. (Without our set at hand, in
  // memory or in the cache folder, the snapshot's own codebooks are used.)
  if (cfg.codebook_source == kv::CodebookSource::Preset && kv::key_groups(cfg.budget, impl_->info.head_dim) > 0) {
    if (engine::CodebookSet ours = impl_->builtin_codebooks_for(cfg, options.codebook_cache_dir, false)) {
      const std::string digest = engine::codebook_set_digest(impl_->llama->kv_shape(), cfg, ours);
      if (digest != loaded.info.codebook_digest)
        throw Error("KV snapshot '" + path + "' holds other built-in codebooks (digest " + loaded.info.codebook_digest.substr(0, 16) +
                    ") than this engine trains for the model (" + digest.substr(0, 16) +
                    "): it was made by another engine version; delete it (the next prefill rebuilds it)");
    }
  }
  ctx->impl_->kv = std::move(loaded.cache);
  ctx->impl_->tokens.assign(loaded.info.tokens.begin(), loaded.info.tokens.end());
  if (segments) {
    segments->clear();
    for (const kv::Segment& seg : loaded.info.segments) segments->push_back({seg.id, seg.hash, seg.begin, seg.end});
  }
  return ctx;
}

Context::Context(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Context::~Context() = default;

int Context::n_ctx() const { return impl_->options.n_ctx; }
int Context::n_past() const { return static_cast<int>(impl_->tokens.size()); }
const std::vector<Token>& Context::tokens() const { return impl_->tokens; }
const std::vector<float>& Context::logits() const { return impl_->logits; }

bool Context::prefill(const std::vector<Token>& tokens, const ProgressFn& progress, const std::atomic<bool>* cancel,
                      const PrefillOptions& options) {
  const kv::AttendPhase phase = options.global ? kv::AttendPhase::Global : kv::AttendPhase::Star;
  impl_->ensure_codebooks();
  impl_->check_room(tokens.size());
  const int n_vocab = impl_->llama().hparams().n_vocab;
  const auto t0 = std::chrono::steady_clock::now();
  size_t done = 0;
  while (done < tokens.size()) {
    if (cancel && cancel->load()) return false;
    const int n = static_cast<int>(std::min(tokens.size() - done, static_cast<size_t>(impl_->options.n_batch)));
    std::vector<float> last(n_vocab);
    impl_->run_chunk(tokens.data() + done, n, phase, false, last.data());
    impl_->logits.swap(last);
    done += n;
    if (progress) {
      const double s = seconds_since(t0);
      progress({static_cast<int64_t>(done), static_cast<int64_t>(tokens.size()), s > 0 ? done / s : 0.0});
    }
  }
  return true;
}

const std::vector<float>& Context::decode(Token token) {
  impl_->check_room(1);
  impl_->ensure_codebooks();
  std::vector<float> next(impl_->llama().hparams().n_vocab);
  impl_->run_chunk(&token, 1, kv::AttendPhase::Global, false, next.data());
  impl_->logits.swap(next);
  return impl_->logits;
}

std::vector<float> Context::eval_logits(const std::vector<Token>& tokens, const std::atomic<bool>* cancel) {
  impl_->check_room(tokens.size());
  impl_->ensure_codebooks();
  const size_t n_vocab = impl_->llama().hparams().n_vocab;
  std::vector<float> out(tokens.size() * n_vocab);
  size_t done = 0;
  while (done < tokens.size()) {
    if (cancel && cancel->load()) throw Error("evaluation cancelled");
    const int n = static_cast<int>(std::min(tokens.size() - done, static_cast<size_t>(impl_->options.n_batch)));
    impl_->run_chunk(tokens.data() + done, n, kv::AttendPhase::Star, true, out.data() + done * n_vocab);
    done += n;
  }
  if (!tokens.empty()) impl_->logits.assign(out.end() - n_vocab, out.end());
  return out;
}

void Context::truncate(int n) {
  if (n < 0 || n > n_past()) throw Error("truncate: " + std::to_string(n) + " is outside 0.." + std::to_string(n_past()));
  impl_->tokens.resize(n);
  impl_->kv->truncate(n);
  impl_->logits.clear();
}

KvMemory Context::kv_memory() const {
  const model::KvShape shape = impl_->llama().kv_shape();
  const model::KvBytes b = impl_->kv->bytes();
  KvMemory m;
  m.mode = impl_->options.kv.mode;
  m.tokens = n_past();
  m.fast_bytes = b.fast;
  m.host_bytes = b.host;
  if (const auto* hc = dynamic_cast<const kv::HcKvCache*>(impl_->kv.get())) {
    m.disk_bytes = hc->mapped_bytes();
    const kv::SelectionCounts c = hc->selection_counts();
    if (c.candidates > 0) m.selected_share = static_cast<double>(c.selected) / static_cast<double>(c.candidates);
    if (c.decode_steps > 0) m.dense_step_share = static_cast<double>(c.dense_steps) / static_cast<double>(c.decode_steps);
    m.evicted_tokens = hc->evicted_tokens();
  }
  m.f16_bytes_per_token = 2.0 * 2.0 * shape.n_layer * shape.n_head_kv * shape.head_dim;
  return m;
}

void Context::save_snapshot(const std::string& path, const std::vector<SnapshotSegment>& segments) const {
  const auto* cache = dynamic_cast<const kv::HcKvCache*>(impl_->kv.get());
  if (!cache) throw Error("KV snapshots need an HCAttention budget (50%, 25% or 12.5%), not \"full\"");
  std::vector<kv::Segment> segs;
  for (const SnapshotSegment& s : segments) segs.push_back({s.id, s.hash, s.begin, s.end});
  kv::save_snapshot(path, *cache, impl_->model->info().digest, impl_->tokens, segs);
}

std::unique_ptr<Context> Context::fork(int n_prefix) const {
  const int n = n_prefix < 0 ? n_past() : n_prefix;
  if (n > n_past()) throw Error("fork: prefix " + std::to_string(n) + " is longer than the context (" + std::to_string(n_past()) + ")");
  auto impl = std::make_unique<Impl>();
  impl->model = impl_->model;
  impl->options = impl_->options;
  impl->kv = impl_->kv->clone_prefix(n);
  impl->tokens.assign(impl_->tokens.begin(), impl_->tokens.begin() + n);
  if (n == n_past()) impl->logits = impl_->logits;
  return std::unique_ptr<Context>(new Context(std::move(impl)));
}

namespace {

// Length of the longest prefix of s that is complete UTF-8 (a multi-byte character may span tokens).
size_t complete_utf8_prefix(const std::string& s) {
  size_t i = s.size();
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) i = s.size() - back;
    break;
  }
  return i;
}

// How many trailing bytes of text could be the start of a stop string (and so must be held back).
size_t stop_prefix_overlap(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops) {
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; --len) {
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  return hold;
}

}  // namespace

GenerateResult Context::generate(const GenerateOptions& options, const TokenFn& on_token, const std::atomic<bool>* cancel) {
  if (impl_->logits.empty()) {
    throw Error("generate: the context has no logits yet; prefill a prompt first");
  }
  const Model& model = *impl_->model;
  Sampler sampler(options.sampling, impl_->llama().hparams().n_vocab);
  for (Token t : impl_->tokens) sampler.accept(t);
  std::vector<std::string> stops;
  for (const std::string& s : options.stop) {
    if (!s.empty()) stops.push_back(s);
  }

  GenerateResult r;
  r.stats.prompt_tokens = n_past();
  const auto t0 = std::chrono::steady_clock::now();
  std::string text;     // everything generated so far
  size_t emitted = 0;   // bytes of text already passed to on_token
  r.stop_reason = "length";
  while (static_cast<int>(r.tokens.size()) < options.max_tokens) {
    if (cancel && cancel->load()) {
      r.stop_reason = "cancelled";
      break;
    }
    const Token tok = sampler.sample(impl_->logits.data());
    if (model.is_end_of_generation(tok) ||
        std::find(options.stop_tokens.begin(), options.stop_tokens.end(), tok) != options.stop_tokens.end()) {
      r.stop_reason = "eog";
      break;
    }
    sampler.accept(tok);
    r.tokens.push_back(tok);
    text += impl_->model->impl_->tokenizer ? model.token_to_piece(tok) : std::string();
    bool stopped = false;
    for (const std::string& s : stops) {
      const size_t at = text.find(s, emitted > s.size() ? emitted - s.size() : 0);
      if (at != std::string::npos) {
        text.resize(at);
        stopped = true;
      }
    }
    const size_t ready = stopped ? text.size()
                                 : std::min(complete_utf8_prefix(text), text.size() - stop_prefix_overlap(text, stops));
    if (on_token) on_token(tok, ready > emitted ? text.substr(emitted, ready - emitted) : std::string());
    emitted = std::max(emitted, ready);
    if (stopped) {
      r.stop_reason = "stop";
      break;
    }
    if (static_cast<int>(r.tokens.size()) >= options.max_tokens) break;
    if (n_past() >= n_ctx()) {
      r.stop_reason = "context";
      break;
    }
    decode(tok);
  }
  // Text held back for a stop string that did not come, or an unfinished UTF-8 character, goes out last.
  if (on_token && emitted < text.size()) on_token(-1, text.substr(emitted));
  r.text = text;
  r.stats.generated_tokens = static_cast<int>(r.tokens.size());
  r.stats.seconds = seconds_since(t0);
  r.stats.tokens_per_second = r.stats.seconds > 0 ? r.tokens.size() / r.stats.seconds : 0.0;
  return r;
}

// ---------------------------------------------------------------------------------------------------

std::vector<float> log_softmax(const float* logits, int n) {
  const float max_logit = *std::max_element(logits, logits + n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  const double log_z = max_logit + std::log(sum);
  std::vector<float> out(n);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - log_z);
  return out;
}

TopLogprobs top_logprobs(const float* logits, int n, int k) {
  const std::vector<float> lp = log_softmax(logits, n);
  std::vector<Token> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = i;
  k = std::max(0, std::min(k, n));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](Token a, Token b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
  TopLogprobs r;
  for (int i = 0; i < k; ++i) r.top.emplace_back(ids[i], lp[ids[i]]);
  return r;
}

}  // namespace hcattn
