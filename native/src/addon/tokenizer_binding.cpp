// Node-API binding of the Llama-3 tokenizer: class Tokenizer.
//   new Tokenizer(ggufPath)                     blocking load (tests, scripts)
//   Tokenizer.load(ggufPath) → Promise<Tokenizer>  load on a worker thread
//   encode(text: string | Buffer, addBos, parseSpecial) → Int32Array
//   encodeAsync(text, addBos, parseSpecial) → Promise<Int32Array>   (whole files: off the JS thread)
//   decode(ids, special = false) → string        (invalid UTF-8 in the bytes becomes U+FFFD)
//   decodeBytes(ids, special = false) → Buffer   (the exact bytes)
//   tokenToPiece(id, special = false) → Buffer
//   isEndOfGeneration(id) → boolean
//   vocabSize, bos, eos                          read-only numbers
//   Tokenizer.applyChatTemplate([{role, content}], addGenerationPrompt = true) → string
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon/bindings.h"
#include "addon/js_values.h"
#include "common/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace hcattn::addon {

namespace {

using TokenizerPtr = std::shared_ptr<const hcattn::Tokenizer>;

TokenizerPtr load_tokenizer(const std::string& path) {
  const std::unique_ptr<gguf::File> file = gguf::File::open(path);
  // The tokenizer copies what it needs, so the mapping can be released right away.
  return TokenizerPtr(hcattn::Tokenizer::from_gguf(*file));
}

// Text arguments arrive as a JS string (UTF-8 encoded here) or as raw bytes (Buffer / Uint8Array),
// which is how callers pass files that may hold invalid UTF-8.
std::string text_argument(const Napi::Value& v, const char* what) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsTypedArray()) {
    const Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_uint8_array) {
      const Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
      return std::string(reinterpret_cast<const char*>(bytes.Data()), bytes.ElementLength());
    }
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string or a Buffer/Uint8Array");
}

// Runs `work` on a worker thread and settles a promise on the JS thread: resolved with
// `to_js(result)`, or rejected with the message of what `work` threw.
template <class Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;

  static Napi::Promise Start(Napi::Env env, const char* name, Work work, ToJs to_js) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(to_js));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();  // the worker deletes itself after settling
    return promise;
  }

 protected:
  void Execute() override {
    try {
      result_ = work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(to_js_(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, ToJs to_js)
      : Napi::AsyncWorker(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        to_js_(std::move(to_js)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  ToJs to_js_;
  Result result_{};
};

// Per-module state: the class constructor, needed to wrap a tokenizer loaded on a worker thread.
struct TokenizerClassData {
  Napi::FunctionReference constructor;
};

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env, TokenizerClassData* data) {
    return DefineClass(env, "Tokenizer",
                       {
                           StaticMethod<&TokenizerWrap::Load>("load", napi_default, data),
                           StaticMethod<&TokenizerWrap::ApplyChatTemplate>("applyChatTemplate"),
                           InstanceMethod<&TokenizerWrap::Encode>("encode"),
                           InstanceMethod<&TokenizerWrap::EncodeAsync>("encodeAsync"),
                           InstanceMethod<&TokenizerWrap::Decode>("decode"),
                           InstanceMethod<&TokenizerWrap::DecodeBytes>("decodeBytes"),
                           InstanceMethod<&TokenizerWrap::TokenToPiece>("tokenToPiece"),
                           InstanceMethod<&TokenizerWrap::IsEndOfGeneration>("isEndOfGeneration"),
                           InstanceAccessor<&TokenizerWrap::VocabSize>("vocabSize"),
                           InstanceAccessor<&TokenizerWrap::Bos>("bos"),
                           InstanceAccessor<&TokenizerWrap::Eos>("eos"),
                       },
                       data);
  }

  explicit TokenizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenizerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() >= 1 && info[0].IsExternal()) {
      // Internal path from Tokenizer.load(): the worker already built the tokenizer.
      tokenizer_ = *info[0].As<Napi::External<TokenizerPtr>>().Data();
      return;
    }
    if (info.Length() < 1 || !info[0].IsString()) {
      throw Napi::TypeError::New(env, "new Tokenizer(path): path to a GGUF file (string) is required");
    }
    tokenizer_ = js_errors(env, [&] { return load_tokenizer(info[0].As<Napi::String>().Utf8Value()); });
  }

 private:
  static Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      throw Napi::TypeError::New(env, "Tokenizer.load(path): path to a GGUF file (string) is required");
    }
    auto* data = static_cast<TokenizerClassData*>(info.Data());
    std::string path = info[0].As<Napi::String>().Utf8Value();
    return PromiseWorker<TokenizerPtr>::Start(
        env, "hcattn.Tokenizer.load", [path = std::move(path)] { return load_tokenizer(path); },
        [data](Napi::Env env, TokenizerPtr& tokenizer) -> Napi::Value {
          Napi::External<TokenizerPtr> ext = Napi::External<TokenizerPtr>::New(env, &tokenizer);
          return data->constructor.New({ext});
        });
  }

  static Napi::Value ApplyChatTemplate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) {
      throw Napi::TypeError::New(env, "applyChatTemplate(messages): messages must be an array of {role, content}");
    }
    const Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<ChatMessage> messages;
    messages.reserve(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const Napi::Value m = arr.Get(i);
      if (!m.IsObject()) throw Napi::TypeError::New(env, "applyChatTemplate: every message must be {role, content}");
      const Napi::Object o = m.As<Napi::Object>();
      const Napi::Value role = o.Get("role");
      const Napi::Value content = o.Get("content");
      if (!role.IsString() || !content.IsString()) {
        throw Napi::TypeError::New(env, "applyChatTemplate: message " + std::to_string(i) +
                                            " needs string fields role and content");
      }
      messages.push_back({role.As<Napi::String>().Utf8Value(), content.As<Napi::String>().Utf8Value()});
    }
    const std::string text = hcattn::Tokenizer::apply_chat_template(messages, bool_arg(info, 1, true));
    return Napi::String::New(env, text);
  }

  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "encode(text, addBos, parseSpecial): text is required");
    const std::string text = text_argument(info[0], "encode: text");
    const bool add_bos = bool_arg(info, 1, false);
    const bool parse_special = bool_arg(info, 2, false);
    return to_int32_array(env, js_errors(env, [&] { return tokenizer_->encode(text, add_bos, parse_special); }));
  }

  Napi::Value EncodeAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) {
      throw Napi::TypeError::New(env, "encodeAsync(text, addBos, parseSpecial): text is required");
    }
    // The worker shares the tokenizer: the JS object may be collected while it runs.
    return PromiseWorker<std::vector<Token>>::Start(
        env, "hcattn.Tokenizer.encodeAsync",
        [tokenizer = tokenizer_, text = text_argument(info[0], "encodeAsync: text"), add_bos = bool_arg(info, 1, false),
         parse_special = bool_arg(info, 2, false)] { return tokenizer->encode(text, add_bos, parse_special); },
        [](Napi::Env env, std::vector<Token>& ids) -> Napi::Value { return to_int32_array(env, ids); });
  }

  std::string decode_argument_bytes(const Napi::CallbackInfo& info) {
    if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "decode(ids, special): ids are required");
    const std::vector<Token> ids = ids_argument(info[0], "ids");
    const bool special = bool_arg(info, 1, false);
    return js_errors(info.Env(), [&] { return tokenizer_->decode(ids, special); });
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    const std::string bytes = decode_argument_bytes(info);
    return Napi::String::New(info.Env(), bytes);
  }

  Napi::Value DecodeBytes(const Napi::CallbackInfo& info) {
    const std::string bytes = decode_argument_bytes(info);
    return Napi::Buffer<char>::Copy(info.Env(), bytes.data(), bytes.size());
  }

  Token id_argument(const Napi::CallbackInfo& info, const char* method) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      throw Napi::TypeError::New(info.Env(), std::string(method) + "(id): a token id (number) is required");
    }
    const Token id = info[0].As<Napi::Number>().Int32Value();
    if (id < 0 || id >= tokenizer_->vocab_size()) {
      throw Napi::RangeError::New(info.Env(), std::string(method) + ": token id " + std::to_string(id) +
                                                  " is outside the vocabulary [0, " +
                                                  std::to_string(tokenizer_->vocab_size()) + ")");
    }
    return id;
  }

  Napi::Value TokenToPiece(const Napi::CallbackInfo& info) {
    const Token id = id_argument(info, "tokenToPiece");
    const bool special = bool_arg(info, 1, false);
    const std::string piece = js_errors(info.Env(), [&] { return tokenizer_->token_to_piece(id, special); });
    return Napi::Buffer<char>::Copy(info.Env(), piece.data(), piece.size());
  }

  Napi::Value IsEndOfGeneration(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      throw Napi::TypeError::New(info.Env(), "isEndOfGeneration(id): a token id (number) is required");
    }
    return Napi::Boolean::New(info.Env(), tokenizer_->is_end_of_generation(info[0].As<Napi::Number>().Int32Value()));
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tokenizer_->vocab_size()); }
  Napi::Value Bos(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tokenizer_->bos()); }
  Napi::Value Eos(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tokenizer_->eos()); }

  TokenizerPtr tokenizer_;
};

}  // namespace

void register_tokenizer(Napi::Env env, Napi::Object exports) {
  // Lives as long as the module instance; freed by the environment's cleanup hook.
  auto* data = new TokenizerClassData();
  Napi::Function cls = TokenizerWrap::Define(env, data);
  data->constructor = Napi::Persistent(cls);
  env.AddCleanupHook([data]() { delete data; });
  exports.Set("Tokenizer", cls);
}

}  // namespace hcattn::addon
