// CUDA GEMV (decode) and tensor-core GEMM (prefill) for every weight type the CUDA backend takes,
// against the dequantized weights in double and against cpu::matmul_reference (cuda/op_checks.cpp
// holds the comparisons and their error bounds). Odd row counts and token counts that are not whole
// tiles exercise the edges. Skipped (exit 77) with the reason when no CUDA device is usable.
#include "cuda_test.h"

int main() {
  return cuda_test_main("test_cuda_matmul", [] {
#ifdef HCATTN_WITH_CUDA
    using namespace hcattn;
    using quant::GgmlType;
    struct Case {
      int rows, cols, n_tokens;
      bool gemm;
    };
    const Case cases[] = {{1, 256, 1, false},   {203, 1024, 1, false}, {64, 2048, 8, false}, {96, 512, 13, false},
                          {130, 512, 1, true},  {200, 768, 150, true}, {256, 4096, 128, true}};
    uint64_t seed = 100;
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16}) {
      for (const Case& c : cases) {
        for (const cuda::CheckResult& r : cuda::check_matmul(t, c.rows, c.cols, c.n_tokens, c.gemm, seed++)) report(r);
      }
    }
#endif
  });
}
