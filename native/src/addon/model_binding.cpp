// Node-API binding of the model and its contexts. Everything that computes runs on a worker thread
// (AsyncWorker) and answers with a Promise; generated tokens and prefill progress stream back to JS
// through the worker's thread-safe function queue (AsyncProgressQueueWorker), in order, before the
// Promise settles. ctx.cancel() sets a flag the engine checks before every token and prefill chunk.
//
//   Model.load(path, {threads?, device?: "auto"|"cpu"|"cuda"}) → Promise<Model>
//   model.info                                   {name, quantization, nLayer, ..., digest, threads, device, deviceName, deviceNote}
//   model.tokenize(text, addBos = true, parseSpecial = false) → Promise<Int32Array>
//   model.detokenize(ids, special = false) → string
//   model.tokenToPiece(id, special = false) → string
//   model.isEndOfGeneration(id) → boolean
//   model.createContext({nCtx?, nBatch?, kvType?: "f32" | "f16", kv?}) → Context
//       kv: {mode: "full" | "50%" | "25%" | "12.5%", topP?, sinks?, recent?, kMax?, margin?, boundScale?, centroids?,
//            calibrationTokens?, starBlock?, rescore?, tail?, denseShare?, valueCap?, eviction?, codebooks?: "builtin" | "workspace"}, codebookCacheDir?,
//            mapSnapshot? (loadContext: keys and values served from the mapped file)
//   model.loadContext(path, contextOptions, keepTokens = -1) → Promise<{context, segments}>   (.hckv snapshot)
//   ctx.kvMemory() → {mode, tokens, fastBytes, hostBytes, diskBytes, f16BytesPerToken, selectedShare?,
//                    denseStepShare?, evictedTokens}
//   ctx.saveSnapshot(path, segments: [{id, hash, begin, end}]) → Promise<void>
//   ctx.prefill(tokens, onProgress?({done, total, tokensPerSecond}), {global?}) → Promise<{evaluated, cancelled, seconds}>
//   ctx.evalLogits(tokens, topK = 10, {full?}) → Promise<{top: [[id, logprob], ...][], logprobs?: Float32Array}>
//   ctx.generate({maxTokens?, sampling?, stop?, stopTokens?}, onToken?(text, id)) →   (id -1: held-back text at the end)
//       Promise<{text, tokens, stopReason, stats: {promptTokens, generatedTokens, seconds, tokensPerSecond}}>
//   ctx.cancel(); ctx.truncate(n); ctx.fork(n?) → Context; ctx.dispose()
//   ctx.nPast, ctx.nCtx, ctx.tokens (Int32Array)
#include <napi.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon/bindings.h"
#include "addon/js_values.h"
#include "hcattn/engine.h"

namespace hcattn::addon {

namespace {

// Reaches the methods that create objects through their per-method data pointer (info.Data()).
struct ClassData {
  Napi::FunctionReference model_ctor;
  Napi::FunctionReference context_ctor;
};

// One engine context and the flags the JS side and the worker threads share.
struct ContextState {
  std::unique_ptr<hcattn::Context> ctx;
  std::atomic<bool> cancel{false};
  bool busy = false;  // touched on the JS thread only
};
using ContextPtr = std::shared_ptr<ContextState>;

Napi::Object options_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

double number_opt(const Napi::Object& o, const char* key, double fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("option '") + key + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

Napi::Function callback_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Function();
  if (!info[i].IsFunction()) throw Napi::TypeError::New(info.Env(), "callback must be a function");
  return info[i].As<Napi::Function>();
}

Napi::Object info_object(Napi::Env env, const hcattn::Model& m) {
  const ModelInfo& i = m.info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", i.name);
  o.Set("architecture", i.architecture);
  o.Set("quantization", i.quantization);
  o.Set("parameters", static_cast<double>(i.parameters));
  o.Set("fileBytes", static_cast<double>(i.file_bytes));
  o.Set("nCtxTrain", i.n_ctx_train);
  o.Set("nEmbd", i.n_embd);
  o.Set("nLayer", i.n_layer);
  o.Set("nHead", i.n_head);
  o.Set("nHeadKv", i.n_head_kv);
  o.Set("headDim", i.head_dim);
  o.Set("nFf", i.n_ff);
  o.Set("nVocab", i.n_vocab);
  o.Set("bos", i.bos);
  o.Set("eos", i.eos);
  o.Set("digest", i.digest);
  o.Set("threads", m.threads());
  o.Set("device", i.device);
  o.Set("deviceName", i.device_name);
  o.Set("deviceNote", i.device_note);
  return o;
}

// Marks a context busy for the lifetime of one worker (set and cleared on the JS thread).
class BusyGuard {
 public:
  BusyGuard(Napi::Env env, ContextPtr state) : state_(std::move(state)) {
    if (!state_->ctx) throw Napi::Error::New(env, "the context was disposed; create a new one");
    if (state_->busy) {
      throw Napi::Error::New(env, "the context is busy with another operation; await it (or cancel() it) first");
    }
    state_->busy = true;
    state_->cancel = false;
  }
  ~BusyGuard() { state_->busy = false; }
  hcattn::Context& ctx() const { return *state_->ctx; }
  const std::atomic<bool>* cancel() const { return &state_->cancel; }

 private:
  ContextPtr state_;
};

// ---------------------------------------------------------------------------------------------------
// Workers

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, ModelOptions options, ClassData* data)
      : Napi::AsyncWorker(env, "hcattn.Model.load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        options_(std::move(options)),
        data_(data) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      model_ = hcattn::Model::load(path_, options_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    std::shared_ptr<hcattn::Model> holder = model_;
    auto ext = Napi::External<std::shared_ptr<hcattn::Model>>::New(Env(), &holder);
    deferred_.Resolve(data_->model_ctor.New({ext}));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  ModelOptions options_;
  ClassData* data_;
  std::shared_ptr<hcattn::Model> model_;
};

class TokenizeWorker : public Napi::AsyncWorker {
 public:
  TokenizeWorker(Napi::Env env, std::shared_ptr<hcattn::Model> model, std::string text, bool add_bos, bool parse_special)
      : Napi::AsyncWorker(env, "hcattn.Model.tokenize"),
        deferred_(Napi::Promise::Deferred::New(env)),
        model_(std::move(model)),
        text_(std::move(text)),
        add_bos_(add_bos),
        parse_special_(parse_special) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      ids_ = model_->tokenize(text_, add_bos_, parse_special_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(to_int32_array(Env(), ids_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<hcattn::Model> model_;
  std::string text_;
  bool add_bos_, parse_special_;
  std::vector<Token> ids_;
};

// Runs `work` on a worker thread; `done` builds the resolved value on the JS thread.
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, const char* name, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(done_(Env())); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

KvOptions kv_options(const Napi::Object& context_options) {
  KvOptions kv;
  const Napi::Value v = context_options.Get("kv");
  if (v.IsUndefined() || v.IsNull()) return kv;
  if (!v.IsObject()) throw Napi::TypeError::New(context_options.Env(), "option 'kv' must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  const Napi::Value mode = o.Get("mode");
  if (mode.IsString()) kv.mode = mode.As<Napi::String>().Utf8Value();
  kv.top_p = static_cast<float>(number_opt(o, "topP", kv.top_p));
  kv.sinks = static_cast<int>(number_opt(o, "sinks", kv.sinks));
  kv.recent = static_cast<int>(number_opt(o, "recent", kv.recent));
  kv.k_max = static_cast<int>(number_opt(o, "kMax", kv.k_max));
  kv.margin = static_cast<float>(number_opt(o, "margin", kv.margin));
  kv.bound_scale = static_cast<float>(number_opt(o, "boundScale", kv.bound_scale));
  kv.dense_share = static_cast<float>(number_opt(o, "denseShare", kv.dense_share));
  kv.value_cap = static_cast<int>(number_opt(o, "valueCap", kv.value_cap));
  if (o.Has("eviction")) kv.eviction = o.Get("eviction").ToString().Utf8Value();
  kv.centroids = static_cast<int>(number_opt(o, "centroids", kv.centroids));
  kv.calibration_tokens = static_cast<int>(number_opt(o, "calibrationTokens", kv.calibration_tokens));
  kv.star_block = static_cast<int>(number_opt(o, "starBlock", kv.star_block));
  if (o.Has("rescore")) kv.rescore = o.Get("rescore").ToBoolean().Value();
  if (o.Has("tail")) kv.tail = o.Get("tail").ToBoolean().Value();
  const Napi::Value codebooks = o.Get("codebooks");
  if (codebooks.IsString()) kv.codebooks = codebooks.As<Napi::String>().Utf8Value();
  return kv;
}

ContextOptions context_options(Napi::Env env, const Napi::Object& o) {
  ContextOptions c;
  c.n_ctx = static_cast<int>(number_opt(o, "nCtx", c.n_ctx));
  c.n_batch = static_cast<int>(number_opt(o, "nBatch", c.n_batch));
  const Napi::Value kv = o.Get("kvType");
  if (kv.IsString()) {
    const std::string t = kv.As<Napi::String>().Utf8Value();
    if (t == "f16") {
      c.kv_type = KvType::F16;
    } else if (t != "f32") {
      throw Napi::TypeError::New(env, "kvType must be \"f32\" or \"f16\"");
    }
  }
  c.kv = kv_options(o);
  const Napi::Value dir = o.Get("codebookCacheDir");
  if (dir.IsString()) c.codebook_cache_dir = dir.As<Napi::String>().Utf8Value();
  c.map_snapshot_values = o.Get("mapSnapshot").ToBoolean().Value();
  return c;
}

std::vector<SnapshotSegment> segments_argument(const Napi::Value& v) {
  std::vector<SnapshotSegment> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "segments must be an array of {id, hash, begin, end}");
  const Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value item = a.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(v.Env(), "segments must be an array of {id, hash, begin, end}");
    const Napi::Object o = item.As<Napi::Object>();
    out.push_back({o.Get("id").ToString().Utf8Value(), o.Get("hash").ToString().Utf8Value(),
                   static_cast<int64_t>(number_opt(o, "begin", 0)), static_cast<int64_t>(number_opt(o, "end", 0))});
  }
  return out;
}

Napi::Array segments_value(Napi::Env env, const std::vector<SnapshotSegment>& segments) {
  Napi::Array a = Napi::Array::New(env, segments.size());
  for (size_t i = 0; i < segments.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", segments[i].id);
    o.Set("hash", segments[i].hash);
    o.Set("begin", static_cast<double>(segments[i].begin));
    o.Set("end", static_cast<double>(segments[i].end));
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

class PrefillWorker : public Napi::AsyncProgressQueueWorker<PrefillProgress> {
 public:
  PrefillWorker(Napi::Env env, ContextPtr state, std::vector<Token> tokens, Napi::Function on_progress,
                PrefillOptions options)
      : Napi::AsyncProgressQueueWorker<PrefillProgress>(env, "hcattn.Context.prefill"),
        deferred_(Napi::Promise::Deferred::New(env)),
        guard_(env, std::move(state)),
        tokens_(std::move(tokens)),
        options_(options) {
    if (!on_progress.IsEmpty()) on_progress_ = Napi::Persistent(on_progress);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      const bool stream = !on_progress_.IsEmpty();
      const int before = guard_.ctx().n_past();
      completed_ = guard_.ctx().prefill(
          tokens_, [&](const PrefillProgress& p) { if (stream) progress.Send(&p, 1); }, guard_.cancel(), options_);
      evaluated_ = guard_.ctx().n_past() - before;
      seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const PrefillProgress* p, size_t count) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count; ++i) {
      Napi::Object o = Napi::Object::New(Env());
      o.Set("done", static_cast<double>(p[i].done));
      o.Set("total", static_cast<double>(p[i].total));
      o.Set("tokensPerSecond", p[i].tokens_per_second);
      on_progress_.Call({o});
    }
  }
  void OnOK() override {
    Napi::Object r = Napi::Object::New(Env());
    r.Set("evaluated", evaluated_);
    r.Set("cancelled", !completed_);
    r.Set("seconds", seconds_);
    r.Set("tokensPerSecond", seconds_ > 0 ? evaluated_ / seconds_ : 0.0);
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  BusyGuard guard_;
  std::vector<Token> tokens_;
  PrefillOptions options_;
  Napi::FunctionReference on_progress_;
  bool completed_ = false;
  int evaluated_ = 0;
  double seconds_ = 0;
};

class EvalLogitsWorker : public Napi::AsyncWorker {
 public:
  EvalLogitsWorker(Napi::Env env, ContextPtr state, std::vector<Token> tokens, int top_k, bool full)
      : Napi::AsyncWorker(env, "hcattn.Context.evalLogits"),
        deferred_(Napi::Promise::Deferred::New(env)),
        guard_(env, std::move(state)),
        tokens_(std::move(tokens)),
        top_k_(top_k),
        full_(full) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      const std::vector<float> logits = guard_.ctx().eval_logits(tokens_, guard_.cancel());
      const int n_vocab = tokens_.empty() ? 0 : static_cast<int>(logits.size() / tokens_.size());
      n_vocab_ = n_vocab;
      for (size_t t = 0; t < tokens_.size(); ++t) {
        const float* row = logits.data() + t * n_vocab;
        top_.push_back(top_logprobs(row, n_vocab, top_k_));
        if (full_) {
          const std::vector<float> lp = log_softmax(row, n_vocab);
          logprobs_.insert(logprobs_.end(), lp.begin(), lp.end());
        }
      }
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array top = Napi::Array::New(env, top_.size());
    for (size_t t = 0; t < top_.size(); ++t) {
      Napi::Array row = Napi::Array::New(env, top_[t].top.size());
      for (size_t i = 0; i < top_[t].top.size(); ++i) {
        Napi::Array pair = Napi::Array::New(env, 2);
        pair.Set(0u, top_[t].top[i].first);
        pair.Set(1u, top_[t].top[i].second);
        row.Set(static_cast<uint32_t>(i), pair);
      }
      top.Set(static_cast<uint32_t>(t), row);
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("top", top);
    r.Set("nVocab", n_vocab_);
    if (full_) {
      Napi::Float32Array lp = Napi::Float32Array::New(env, logprobs_.size());
      if (!logprobs_.empty()) std::memcpy(lp.Data(), logprobs_.data(), logprobs_.size() * sizeof(float));
      r.Set("logprobs", lp);
    }
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  BusyGuard guard_;
  std::vector<Token> tokens_;
  int top_k_;
  bool full_;
  int n_vocab_ = 0;
  std::vector<TopLogprobs> top_;
  std::vector<float> logprobs_;  // (tokens, n_vocab) when full
};

struct StreamedToken {
  Token id = 0;
  std::string text;
};

class GenerateWorker : public Napi::AsyncProgressQueueWorker<StreamedToken> {
 public:
  GenerateWorker(Napi::Env env, ContextPtr state, GenerateOptions options, Napi::Function on_token)
      : Napi::AsyncProgressQueueWorker<StreamedToken>(env, "hcattn.Context.generate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        guard_(env, std::move(state)),
        options_(std::move(options)) {
    if (!on_token.IsEmpty()) on_token_ = Napi::Persistent(on_token);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      const bool stream = !on_token_.IsEmpty();
      result_ = guard_.ctx().generate(
          options_,
          [&](Token id, const std::string& text) {
            if (!stream) return;
            StreamedToken t{id, text};
            progress.Send(&t, 1);
          },
          guard_.cancel());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const StreamedToken* t, size_t count) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count; ++i) on_token_.Call({Napi::String::New(Env(), t[i].text), Napi::Number::New(Env(), t[i].id)});
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object stats = Napi::Object::New(env);
    stats.Set("promptTokens", result_.stats.prompt_tokens);
    stats.Set("generatedTokens", result_.stats.generated_tokens);
    stats.Set("seconds", result_.stats.seconds);
    stats.Set("tokensPerSecond", result_.stats.tokens_per_second);
    Napi::Object r = Napi::Object::New(env);
    r.Set("text", result_.text);
    r.Set("tokens", to_int32_array(env, result_.tokens));
    r.Set("stopReason", result_.stop_reason);
    r.Set("stats", stats);
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  BusyGuard guard_;
  GenerateOptions options_;
  Napi::FunctionReference on_token_;
  GenerateResult result_;
};

// ---------------------------------------------------------------------------------------------------
// Classes

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  static Napi::Function Define(Napi::Env env, ClassData* data) {
    return DefineClass(env, "Context",
                       {
                           InstanceMethod<&ContextWrap::Prefill>("prefill"),
                           InstanceMethod<&ContextWrap::EvalLogits>("evalLogits"),
                           InstanceMethod<&ContextWrap::Generate>("generate"),
                           InstanceMethod<&ContextWrap::Cancel>("cancel"),
                           InstanceMethod<&ContextWrap::Truncate>("truncate"),
                           InstanceMethod<&ContextWrap::Fork>("fork", napi_default, data),
                           InstanceMethod<&ContextWrap::Dispose>("dispose"),
                           InstanceMethod<&ContextWrap::KvMemory>("kvMemory"),
                           InstanceMethod<&ContextWrap::SaveSnapshot>("saveSnapshot"),
                           InstanceAccessor<&ContextWrap::NPast>("nPast"),
                           InstanceAccessor<&ContextWrap::NCtx>("nCtx"),
                           InstanceAccessor<&ContextWrap::Tokens>("tokens"),
                       });
  }

  explicit ContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "contexts are created with model.createContext()");
    }
    state_ = *info[0].As<Napi::External<ContextPtr>>().Data();
  }

 private:
  ClassData* data(const Napi::CallbackInfo& info) { return static_cast<ClassData*>(info.Data()); }
  hcattn::Context& ctx(Napi::Env env) {
    if (!state_->ctx) throw Napi::Error::New(env, "the context was disposed; create a new one");
    return *state_->ctx;
  }
  void check_idle(Napi::Env env) {
    if (state_->busy) throw Napi::Error::New(env, "the context is busy with another operation; await it first");
  }

  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "prefill(tokens, onProgress?, {global?})");
    PrefillOptions po;
    po.global = options_arg(info, 2).Get("global").ToBoolean().Value();
    auto* w = new PrefillWorker(info.Env(), state_, ids_argument(info[0], "tokens"), callback_arg(info, 1), po);
    w->Queue();
    return w->Promise();
  }

  Napi::Value EvalLogits(const Napi::CallbackInfo& info) {
    if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "evalLogits(tokens, topK = 10, {full?})");
    const int top_k = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 10;
    const Napi::Object opts = options_arg(info, 2);
    const bool full = opts.Get("full").ToBoolean().Value();
    auto* w = new EvalLogitsWorker(info.Env(), state_, ids_argument(info[0], "tokens"), top_k, full);
    w->Queue();
    return w->Promise();
  }

  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Napi::Object o = options_arg(info, 0);
    GenerateOptions g;
    g.max_tokens = static_cast<int>(number_opt(o, "maxTokens", g.max_tokens));
    const Napi::Value sv = o.Get("sampling");
    if (sv.IsObject()) {
      const Napi::Object s = sv.As<Napi::Object>();
      g.sampling.temperature = static_cast<float>(number_opt(s, "temperature", g.sampling.temperature));
      g.sampling.top_k = static_cast<int>(number_opt(s, "topK", g.sampling.top_k));
      g.sampling.top_p = static_cast<float>(number_opt(s, "topP", g.sampling.top_p));
      g.sampling.repeat_penalty = static_cast<float>(number_opt(s, "repeatPenalty", g.sampling.repeat_penalty));
      g.sampling.repeat_last_n = static_cast<int>(number_opt(s, "repeatLastN", g.sampling.repeat_last_n));
      g.sampling.seed = static_cast<uint64_t>(number_opt(s, "seed", static_cast<double>(g.sampling.seed)));
    }
    const Napi::Value stop = o.Get("stop");
    if (stop.IsArray()) {
      const Napi::Array a = stop.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) g.stop.push_back(a.Get(i).ToString().Utf8Value());
    }
    const Napi::Value stop_tokens = o.Get("stopTokens");
    if (!stop_tokens.IsUndefined() && !stop_tokens.IsNull()) g.stop_tokens = ids_argument(stop_tokens, "stopTokens");
    auto* w = new GenerateWorker(env, state_, std::move(g), callback_arg(info, 1));
    w->Queue();
    return w->Promise();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    state_->cancel = true;
    return info.Env().Undefined();
  }

  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_idle(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "truncate(n): n must be a number");
    js_errors(env, [&] { ctx(env).truncate(info[0].As<Napi::Number>().Int32Value()); });
    return env.Undefined();
  }

  Napi::Value Fork(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_idle(env);
    const int n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    auto state = std::make_shared<ContextState>();
    state->ctx = js_errors(env, [&] { return ctx(env).fork(n); });
    auto ext = Napi::External<ContextPtr>::New(env, &state);
    return data(info)->context_ctor.New({ext});
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    check_idle(info.Env());
    state_->ctx.reset();
    return info.Env().Undefined();
  }

  Napi::Value KvMemory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_idle(env);
    const hcattn::KvMemory m = ctx(env).kv_memory();
    Napi::Object o = Napi::Object::New(env);
    o.Set("mode", m.mode);
    o.Set("tokens", static_cast<double>(m.tokens));
    o.Set("fastBytes", static_cast<double>(m.fast_bytes));
    o.Set("hostBytes", static_cast<double>(m.host_bytes));
    o.Set("diskBytes", static_cast<double>(m.disk_bytes));
    o.Set("f16BytesPerToken", m.f16_bytes_per_token);
    if (m.selected_share >= 0) o.Set("selectedShare", m.selected_share);
    if (m.dense_step_share >= 0) o.Set("denseStepShare", m.dense_step_share);
    o.Set("evictedTokens", static_cast<double>(m.evicted_tokens));
    return o;
  }

  Napi::Value SaveSnapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "saveSnapshot(path, segments?)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    std::vector<SnapshotSegment> segments = segments_argument(info.Length() > 1 ? info[1] : env.Undefined());
    // The guard keeps the context busy until the promise settles (released when the worker is deleted).
    auto guard = std::make_shared<BusyGuard>(env, state_);
    auto* w = new TaskWorker(
        env, "hcattn.Context.saveSnapshot", [guard, path, segments] { guard->ctx().save_snapshot(path, segments); },
        [](Napi::Env e) { return e.Undefined(); });
    w->Queue();
    return w->Promise();
  }

  Napi::Value NPast(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ctx(info.Env()).n_past()); }

  Napi::Value NCtx(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ctx(info.Env()).n_ctx()); }
  Napi::Value Tokens(const Napi::CallbackInfo& info) {
    check_idle(info.Env());
    return to_int32_array(info.Env(), ctx(info.Env()).tokens());
  }

  ContextPtr state_;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env, ClassData* data) {
    return DefineClass(env, "Model",
                       {
                           StaticMethod<&ModelWrap::Load>("load", napi_default, data),
                           InstanceAccessor<&ModelWrap::Info>("info"),
                           InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
                           InstanceMethod<&ModelWrap::Detokenize>("detokenize"),
                           InstanceMethod<&ModelWrap::TokenToPiece>("tokenToPiece"),
                           InstanceMethod<&ModelWrap::IsEndOfGeneration>("isEndOfGeneration"),
                           InstanceMethod<&ModelWrap::CreateContext>("createContext", napi_default, data),
                           InstanceMethod<&ModelWrap::LoadContext>("loadContext", napi_default, data),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "models are created with await Model.load(path, {threads})");
    }
    model_ = *info[0].As<Napi::External<std::shared_ptr<hcattn::Model>>>().Data();
  }

 private:
  static ClassData* data(const Napi::CallbackInfo& info) { return static_cast<ClassData*>(info.Data()); }

  static Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      throw Napi::TypeError::New(env, "Model.load(path, {threads?, device?}): path to a GGUF file (string) is required");
    }
    const Napi::Object o = options_arg(info, 1);
    ModelOptions options;
    options.threads = static_cast<int>(number_opt(o, "threads", 0));
    const Napi::Value device = o.Get("device");
    if (device.IsString()) options.device = device.As<Napi::String>().Utf8Value();
    else if (!device.IsUndefined()) throw Napi::TypeError::New(env, "Model.load: device must be \"auto\", \"cpu\" or \"cuda\"");
    auto* w = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), options, data(info));
    w->Queue();
    return w->Promise();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) { return info_object(info.Env(), *model_); }

  Napi::Value Tokenize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string text;
    if (info.Length() >= 1 && info[0].IsString()) {
      text = info[0].As<Napi::String>().Utf8Value();
    } else if (info.Length() >= 1 && info[0].IsTypedArray() &&
               info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
      text.assign(reinterpret_cast<const char*>(bytes.Data()), bytes.ElementLength());
    } else {
      throw Napi::TypeError::New(env, "tokenize(text, addBos = true, parseSpecial = false): text must be a string or Buffer");
    }
    auto* w = new TokenizeWorker(env, model_, std::move(text), bool_arg(info, 1, true), bool_arg(info, 2, false));
    w->Queue();
    return w->Promise();
  }

  Napi::Value Detokenize(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "detokenize(ids, special = false)");
    const std::vector<Token> ids = ids_argument(info[0], "ids");
    return Napi::String::New(env, js_errors(env, [&] { return model_->detokenize(ids, bool_arg(info, 1, false)); }));
  }

  Napi::Value TokenToPiece(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "tokenToPiece(id, special = false)");
    const Token id = info[0].As<Napi::Number>().Int32Value();
    return Napi::String::New(env, js_errors(env, [&] { return model_->token_to_piece(id, bool_arg(info, 1, false)); }));
  }

  Napi::Value IsEndOfGeneration(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "isEndOfGeneration(id)");
    return Napi::Boolean::New(env, model_->is_end_of_generation(info[0].As<Napi::Number>().Int32Value()));
  }

  Napi::Value CreateContext(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ContextOptions c = context_options(env, options_arg(info, 0));
    auto state = std::make_shared<ContextState>();
    state->ctx = js_errors(env, [&] { return model_->create_context(c); });
    auto ext = Napi::External<ContextPtr>::New(env, &state);
    return data(info)->context_ctor.New({ext});
  }

  Napi::Value LoadContext(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "loadContext(path, contextOptions, keepTokens = -1)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const ContextOptions c = context_options(env, options_arg(info, 1));
    const int64_t keep = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int64Value() : -1;
    auto state = std::make_shared<ContextState>();
    auto segments = std::make_shared<std::vector<SnapshotSegment>>();
    std::shared_ptr<hcattn::Model> model = model_;
    ClassData* d = data(info);
    auto* w = new TaskWorker(
        env, "hcattn.Model.loadContext", [=] { state->ctx = model->load_context(path, c, keep, segments.get()); },
        [=](Napi::Env e) -> Napi::Value {
          ContextPtr holder = state;
          auto ext = Napi::External<ContextPtr>::New(e, &holder);
          Napi::Object r = Napi::Object::New(e);
          r.Set("context", d->context_ctor.New({ext}));
          r.Set("segments", segments_value(e, *segments));
          return r;
        });
    w->Queue();
    return w->Promise();
  }

  std::shared_ptr<hcattn::Model> model_;
};

}  // namespace

void register_model(Napi::Env env, Napi::Object exports) {
  // Lives as long as the module instance; freed by the environment's cleanup hook.
  auto* data = new ClassData();
  Napi::Function model = ModelWrap::Define(env, data);
  Napi::Function context = ContextWrap::Define(env, data);
  data->model_ctor = Napi::Persistent(model);
  data->context_ctor = Napi::Persistent(context);
  env.AddCleanupHook([data]() { delete data; });
  exports.Set("Model", model);
  exports.Set("Context", context);
}

}  // namespace hcattn::addon
