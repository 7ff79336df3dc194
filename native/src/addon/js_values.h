// Conversions between JS values and engine values shared by every binding file.
#pragma once
#include <napi.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "hcattn/engine.h"

namespace hcattn::addon {

// Engine errors (hcattn::Error, std::bad_alloc) become JS exceptions; node-addon-api itself only
// forwards Napi::Error.
template <typename F>
auto js_errors(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// Token ids from an Int32Array, a Uint32Array or an array of numbers; `what` names the argument in errors.
inline std::vector<Token> ids_argument(const Napi::Value& v, const char* what) {
  std::vector<Token> ids;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    const Napi::Int32Array a = v.As<Napi::Int32Array>();
    ids.assign(a.Data(), a.Data() + a.ElementLength());
    return ids;
  }
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint32_array) {
    const Napi::Uint32Array a = v.As<Napi::Uint32Array>();
    ids.reserve(a.ElementLength());
    // Ids past INT32_MAX become negative and are then rejected as outside the vocabulary.
    for (size_t i = 0; i < a.ElementLength(); ++i) ids.push_back(static_cast<Token>(a[i]));
    return ids;
  }
  if (v.IsArray()) {
    const Napi::Array a = v.As<Napi::Array>();
    ids.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const Napi::Value e = a.Get(i);
      if (!e.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must hold numbers (token ids)");
      ids.push_back(e.As<Napi::Number>().Int32Value());
    }
    return ids;
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an Int32Array, a Uint32Array or an array of token ids");
}

inline Napi::Int32Array to_int32_array(Napi::Env env, const std::vector<Token>& ids) {
  Napi::Int32Array out = Napi::Int32Array::New(env, ids.size());
  if (!ids.empty()) std::memcpy(out.Data(), ids.data(), ids.size() * sizeof(Token));
  return out;
}

inline bool bool_arg(const Napi::CallbackInfo& info, size_t i, bool fallback) {
  if (info.Length() <= i || info[i].IsUndefined()) return fallback;
  return info[i].ToBoolean().Value();
}

}  // namespace hcattn::addon
