// CUDA RMSNorm, SwiGLU, RoPE (plain Llama-3, linear and YaRN scaling with rope_freqs factors, positions
// up to 2^20)
// and causal chunk attention (GQA, chunks after earlier keys and on their own) against the CPU
// engine's functions (model::rms_norm, model::swiglu, model::Rope, the full KV cache's attend).
// Skipped (exit 77) with the reason when no CUDA device is usable.
#include <cstdio>

#include "test_util.h"

#ifdef HCATTN_WITH_CUDA
#include "cuda/op_checks.h"

using namespace hcattn;

namespace {

void report(const cuda::CheckResult& r) {
  std::printf("%-4s %-28s err %.3g (bound %.2g) %s %s\n", r.passed ? "ok" : "FAIL", r.op.c_str(), r.error, r.bound,
              r.shape.c_str(), r.detail.c_str());
  CHECK(r.passed);
}

}  // namespace

int main() {
  std::string why;
  if (!cuda::device_usable(&why)) {
    std::printf("test_cuda_ops: skipped: %s\n", why.c_str());
    return 77;
  }
  report(cuda::check_rms_norm(1, 4096, 1));
  report(cuda::check_rms_norm(33, 2048, 2));
  report(cuda::check_rms_norm(5, 100, 3));
  report(cuda::check_swiglu(1, 4));
  report(cuda::check_swiglu(14336 * 3 + 7, 5));
  report(cuda::check_rope(cuda::RopeVariant::Plain, 64, 8191, 6));
  report(cuda::check_rope(cuda::RopeVariant::Plain, 16, 1 << 20, 7));
  report(cuda::check_rope(cuda::RopeVariant::LinearWithFreqFactors, 32, 1 << 20, 14));
  report(cuda::check_rope(cuda::RopeVariant::Yarn, 64, 1 << 17, 8));
  report(cuda::check_attention(1, 1, 4, 1, 128, 9));
  report(cuda::check_attention(16, 16, 8, 2, 128, 10));
  report(cuda::check_attention(100, 300, 8, 2, 128, 11));
  report(cuda::check_attention(77, 77, 4, 4, 64, 12));
  report(cuda::check_attention(5, 1000, 32, 8, 128, 13));
  return test_summary("test_cuda_ops");
}

#else

int main() {
  std::printf("test_cuda_ops: skipped: this build has no CUDA backend (configure with -DHCATTN_CUDA=ON where nvcc exists)\n");
  return 77;
}

#endif
