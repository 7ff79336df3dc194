// Every CUDA op against the CPU op on the same random inputs, with a per-op error bound (the
// test-backend-ops idea). Used by the ctest cases (tests/test_cuda_*.cpp) and by `hcattn-cli test` on
// a GPU machine, so both run exactly the same comparisons.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kv/selection.h"
#include "quant/types.h"

namespace hcattn::cuda {

struct CheckResult {
  std::string op;      // e.g. "gemv Q4_0"
  std::string shape;   // what was compared
  double error = 0;    // the measured error, in the unit the bound uses
  double bound = 0;    // pass when error <= bound
  bool passed = false;
  std::string detail;  // the first mismatch, when it failed
};

// Whether a CUDA device can run the kernels of this build; otherwise `reason` says why not.
bool device_usable(std::string* reason);

// Weight products: the GPU result against the dequantized weights · F32 activations in double
// (error relative to sum |w_i x_i| per output), and against cpu::matmul_reference (which rounds the
// activations as llama.cpp does: a looser bound covering that rounding).
std::vector<CheckResult> check_matmul(quant::GgmlType type, int rows, int cols, int n_tokens, bool gemm, uint64_t seed);
CheckResult check_rms_norm(int n_rows, int dim, uint64_t seed);
CheckResult check_swiglu(int64_t n, uint64_t seed);
enum class RopeVariant { Plain, LinearWithFreqFactors, Yarn };
// Positions up to max_pos; Yarn also has rope_freqs factors.
CheckResult check_rope(RopeVariant variant, int n_tokens, int max_pos, uint64_t seed);
CheckResult check_attention(int n_q, int n_k, int n_head, int n_head_kv, int head_dim, uint64_t seed);
// LUT and code scores must be bit-identical to the CPU's.
std::vector<CheckResult> check_lut_scores(int dim, int groups, int centroids, int64_t n, int n_heads, uint64_t seed);
// Index sets must equal kv::select_tokens exactly; weights and kept mass to rounding. `ties` draws
// scores from a handful of values, so the boundary bin holds thousands of equal scores.
CheckResult check_selection(int n_heads, int64_t n, const kv::SelectParams& params, bool ties, uint64_t seed);
// GPU value sums reading f16 values from mapped pinned host memory against kv::attend_values_f16.
CheckResult check_value_sums(int n_heads, int heads_per_kv, int64_t n, int dim, uint64_t seed);

// One HCAttention decode step kept on the device end to end (LUT → code scores → selection → value
// sums from mapped host memory, the selection handed over in device memory) against the CPU chain
// (build_lut, score_codes, select_tokens, attend_values_f16).
CheckResult check_hc_decode_step(int n_heads, int heads_per_kv, int64_t n, int dim, int groups, uint64_t seed);

// The whole list as `hcattn-cli test` runs it.
std::vector<CheckResult> run_all_checks(uint64_t seed);

}  // namespace hcattn::cuda
