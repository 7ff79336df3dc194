// `hcattn-cli bench-kernels`: micro-benchmark of the CPU matmul kernels on random weights made in
// memory (no model file). Prints one line per type, SIMD level and shape; --json for machine output.
#pragma once

namespace hcattn::cli {

// argv[0] is the subcommand name; returns the process exit code.
int bench_kernels(int argc, char** argv);

}  // namespace hcattn::cli
