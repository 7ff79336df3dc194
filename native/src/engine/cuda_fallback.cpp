// The CUDA entry points in a build without the CUDA backend: the engine falls back to the CPU and
// `hcattn-cli test` / `bench` say why instead of failing to link.
#ifndef HCATTN_WITH_CUDA
#include <cstdio>

#include "common/error.h"
#include "cuda/cli_entry.h"
#include "engine/backend.h"

namespace hcattn {

namespace {

constexpr const char* kNotBuilt =
    "this hcattn was built without the CUDA backend (nvcc was not found, or HCATTN_CUDA=OFF); rebuild with "
    "-DHCATTN_CUDA=ON on a machine with the CUDA toolkit";

}  // namespace

namespace engine {

std::string cuda_unavailable_reason() { return kNotBuilt; }

std::unique_ptr<Backend> make_cuda_backend(const model::Llama&, cpu::ThreadPool&) { throw Error(kNotBuilt); }

}  // namespace engine

namespace cuda {

namespace {

int not_built(const char* what) {
  std::printf("%s: skipped: %s\n", what, kNotBuilt);
  return 77;
}

}  // namespace

int cuda_selftest(int, char**) { return not_built("cuda test"); }
int cuda_bench(int, char**) { return not_built("cuda bench"); }

}  // namespace cuda

}  // namespace hcattn
#endif
