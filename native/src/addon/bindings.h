// Each area of the engine registers its Node-API functions and classes from its own file.
#pragma once
#include <napi.h>

namespace hcattn::addon {

void register_build_info(Napi::Env env, Napi::Object exports);  // addon.cpp
void register_tokenizer(Napi::Env env, Napi::Object exports);   // tokenizer_binding.cpp
void register_model(Napi::Env env, Napi::Object exports);       // model_binding.cpp

}  // namespace hcattn::addon
