// Where a model's forward pass runs: the seam between the engine (Model/Context) and the compute.
// The CPU backend calls model::Llama::forward; the CUDA backend (cuda/llama_cuda.h) runs the same
// stages with its own kernels on weights it uploaded once. One backend per loaded model; the model's
// compute mutex makes it run one chunk at a time.
#pragma once
#include <memory>
#include <string>

#include "cpu/threadpool.h"
#include "model/kv_cache.h"
#include "model/llama.h"

namespace hcattn::engine {

class Backend {
 public:
  virtual ~Backend() = default;
  // "cpu" or "cuda": the value of ModelInfo::device.
  virtual const char* name() const = 0;
  // One line for logs and `info`: the GPU's name and memory, or the SIMD level and threads.
  virtual std::string description() const = 0;
  // The plain full-attention cache of a context, kept where this backend's attention reads it
  // (device memory on the GPU). The HCAttention caches are host objects on every backend.
  virtual std::unique_ptr<model::KvCache> make_full_kv_cache(const model::KvShape& shape, int capacity,
                                                             model::KvStorage storage) const = 0;
  // Whether forward() needs the context's host activation buffers (the GPU keeps its own).
  virtual bool uses_host_activations() const = 0;
  // model::Llama::forward's contract: n tokens at positions [pos, pos + n) into kv; logits for every
  // token (n, n_vocab) when all_logits, else for the last one. host is null when
  // uses_host_activations() is false.
  virtual void forward(const int32_t* tokens, int n, int pos, model::KvCache& kv, model::Activations* host,
                       bool all_logits, float* logits) = 0;
};

std::unique_ptr<Backend> make_cpu_backend(const model::Llama& llama, cpu::ThreadPool& pool);

// The CUDA backend for a loaded model: uploads its weights to device 0 (quantized blocks as they
// are). Throws hcattn::Error saying why when it cannot (not compiled, no device, an unsupported
// weight type, not enough GPU memory). Defined in cuda/llama_cuda.cpp, or in
// engine/cuda_fallback.cpp for builds without CUDA. pool runs the host side of HCAttention.
std::unique_ptr<Backend> make_cuda_backend(const model::Llama& llama, cpu::ThreadPool& pool);
// "" when a CUDA device this build can use is present, else why not.
std::string cuda_unavailable_reason();

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  std::string note;  // why CUDA is not used although it was asked for or is compiled in ("" otherwise)
};

// device: "auto" (CUDA when compiled in and a usable device is present, else CPU), "cpu" or "cuda".
// An explicit "cuda" that cannot be honoured falls back to the CPU; the note says why, in one line,
// so a model always loads where the CPU can run it. Throws for any other device string.
BackendChoice select_backend(const std::string& device, const model::Llama& llama, cpu::ThreadPool& pool);

}  // namespace hcattn::engine
