// The CPU backend and the choice between backends at model load.
#include "engine/backend.h"

#include "common/error.h"
#include "cpu/features.h"
#include "model/llama.h"

namespace hcattn::engine {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const model::Llama& llama, cpu::ThreadPool& pool) : llama_(llama), pool_(pool) {}
  const char* name() const override { return "cpu"; }
  std::string description() const override {
    return std::string("CPU (") + cpu::simd_level_name(cpu::simd_level()) + ", " + std::to_string(pool_.size()) +
           " threads)";
  }
  std::unique_ptr<model::KvCache> make_full_kv_cache(const model::KvShape& shape, int capacity,
                                                     model::KvStorage storage) const override {
    return model::make_full_kv_cache(shape, capacity, storage);
  }
  bool uses_host_activations() const override { return true; }
  void forward(const int32_t* tokens, int n, int pos, model::KvCache& kv, model::Activations* host, bool all_logits,
               float* logits) override {
    llama_.forward(tokens, n, pos, kv, *host, pool_, all_logits, logits);
  }

 private:
  const model::Llama& llama_;
  cpu::ThreadPool& pool_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const model::Llama& llama, cpu::ThreadPool& pool) {
  return std::make_unique<CpuBackend>(llama, pool);
}

BackendChoice select_backend(const std::string& device, const model::Llama& llama, cpu::ThreadPool& pool) {
  if (device != "auto" && device != "cpu" && device != "cuda") {
    throw Error("device must be \"auto\", \"cpu\" or \"cuda\", got \"" + device + "\"");
  }
  BackendChoice choice;
  if (device == "cpu") {
    choice.backend = make_cpu_backend(llama, pool);
    return choice;
  }
  const std::string unavailable = cuda_unavailable_reason();
  if (unavailable.empty()) {
    try {
      choice.backend = make_cuda_backend(llama, pool);
      return choice;
    } catch (const std::exception& e) {
      // A present GPU that cannot take this model (weight type, memory) is worth saying in "auto" too.
      choice.note = std::string("CUDA not used, running on the CPU: ") + e.what();
    }
  } else if (device == "cuda") {
    choice.note = "CUDA requested but not available, running on the CPU: " + unavailable;
  }
  choice.backend = make_cpu_backend(llama, pool);
  return choice;
}

}  // namespace hcattn::engine
