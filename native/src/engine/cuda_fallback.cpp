// `hcattn-cli test` / `bench` in a build without the CUDA backend: say so instead of failing to link.
#ifndef HCATTN_WITH_CUDA
#include <cstdio>

#include "cuda/cli_entry.h"

namespace hcattn::cuda {

namespace {

int not_built(const char* what) {
  std::printf("%s: skipped: this hcattn was built without the CUDA backend (nvcc was not found, or HCATTN_CUDA=OFF); "
              "rebuild with -DHCATTN_CUDA=ON on a machine with the CUDA toolkit\n", what);
  return 77;
}

}  // namespace

int cuda_selftest(int, char**) { return not_built("cuda test"); }
int cuda_bench(int, char**) { return not_built("cuda bench"); }

}  // namespace hcattn::cuda
#endif
