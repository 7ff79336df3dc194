// Entry points for `hcattn-cli test` and `hcattn-cli bench` on a GPU machine. argv[0] is the
// subcommand's name. Both return a process exit code: 0 success, 1 failure or bad arguments, 77 when
// no usable CUDA device exists (the reason is printed). Defined in cuda/cli_entry.cpp when the build
// has the CUDA backend, else in engine/cuda_fallback.cpp (which prints that CUDA was not built).
#pragma once

namespace hcattn::cuda {

// Runs every CUDA op against the CPU op (cuda/op_checks.h), then the whole model on the CUDA backend
// against the CPU backend on the fixtures found in --models DIR (default $HCATTN_TEST_DATA, else
// build/test-data; cuda/model_checks.h), printing one line per comparison.
int cuda_selftest(int argc, char** argv);

// Op benchmarks on random weights made on the device:
//   --shape llama3-8b|llama32-1b  --qtype q4_0|q8_0  --ctx N  --kv 50%|25%|12.5%  [--random] [--quick]
int cuda_bench(int argc, char** argv);

}  // namespace hcattn::cuda
