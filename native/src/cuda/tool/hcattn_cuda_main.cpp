// hcattn-cuda: the CUDA self-test and op benchmarks as a standalone program, for GPU machines where
// only the native build runs (bench/gpu/run.sh). `hcattn-cli test|bench` reach the same entry points.
#include <cstdio>
#include <cstring>

#include "cuda/cli_entry.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "test") == 0) return hcattn::cuda::cuda_selftest(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "bench") == 0) return hcattn::cuda::cuda_bench(argc - 1, argv + 1);
  std::fprintf(stderr,
               "usage: hcattn-cuda test [--seed N]\n"
               "       hcattn-cuda bench --shape llama3-8b|llama32-1b --qtype q4_0|q8_0 --ctx N --kv 50%%|25%%|12.5%% [--quick]\n");
  return 1;
}
