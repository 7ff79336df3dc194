// Node-API binding of the engine: module entry. Every blocking call is an AsyncWorker (see the
// *_binding.cpp files); this file registers them, the build information and the GPU memory query.
#include <napi.h>

#include "addon/bindings.h"
#include "hcattn/engine.h"
#ifdef HCATTN_WITH_CUDA
#include "cuda/device.h"
#endif

namespace hcattn::addon {

namespace {

Napi::Value BuildInfoJs(const Napi::CallbackInfo& info) {
  const BuildInfo b = build_info();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("version", b.version);
  out.Set("simd", b.simd);
  out.Set("cudaCompiled", b.cuda_compiled);
  out.Set("cudaDevices", b.cuda_devices);
  out.Set("cudaNote", b.cuda_note);
  return out;
}

// gpuMemory() → {freeBytes, totalBytes} of CUDA device 0, or undefined when the build has no CUDA backend
// or no device is usable. Synchronous: cudaMemGetInfo answers at once once the device has a context.
Napi::Value GpuMemoryJs(const Napi::CallbackInfo& info) {
#ifdef HCATTN_WITH_CUDA
  cuda::DeviceMemory memory;
  if (cuda::device_memory(memory)) {
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("freeBytes", static_cast<double>(memory.free_bytes));
    out.Set("totalBytes", static_cast<double>(memory.total_bytes));
    return out;
  }
#endif
  return info.Env().Undefined();
}

}  // namespace

void register_build_info(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfoJs, "buildInfo"));
  exports.Set("gpuMemory", Napi::Function::New(env, GpuMemoryJs, "gpuMemory"));
}

}  // namespace hcattn::addon

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  hcattn::addon::register_build_info(env, exports);
  hcattn::addon::register_tokenizer(env, exports);
  hcattn::addon::register_model(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(hcattn, Init)
