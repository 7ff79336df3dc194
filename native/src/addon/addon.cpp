// Node-API binding of the engine. Every blocking call is an AsyncWorker; this file only registers them.
#include <napi.h>

#include "hcattn/engine.h"

namespace {

Napi::Value BuildInfoJs(const Napi::CallbackInfo& info) {
  const hcattn::BuildInfo b = hcattn::build_info();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("version", b.version);
  out.Set("simd", b.simd);
  out.Set("cudaCompiled", b.cuda_compiled);
  out.Set("cudaDevices", b.cuda_devices);
  out.Set("cudaNote", b.cuda_note);
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfoJs, "buildInfo"));
  return exports;
}

}  // namespace

NODE_API_MODULE(hcattn, Init)
