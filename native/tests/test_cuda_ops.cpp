// CUDA RMSNorm, SwiGLU, RoPE (plain Llama-3, linear and YaRN scaling with rope_freqs factors, positions
// up to 2^20) and causal attention (GQA, chunks after earlier keys and on their own, decode-sized
// query counts that split the keys over blocks) against the CPU engine's functions (model::rms_norm,
// model::swiglu, model::Rope, the full KV cache's attend).
// Skipped (exit 77) with the reason when no CUDA device is usable.
#include "cuda_test.h"

int main() {
  return cuda_test_main("test_cuda_ops", [] {
#ifdef HCATTN_WITH_CUDA
    using namespace hcattn;
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
    report(cuda::check_attention(40, 90, 4, 2, 16, 15));  // the tiny fixtures' head size
    // Up to 4 queries split the keys over blocks and merge: one range, many ranges, a last partial one.
    report(cuda::check_attention(1, 5000, 32, 8, 128, 16));
    report(cuda::check_attention(3, 2049, 8, 2, 64, 17));
    report(cuda::check_attention(2, 40, 4, 2, 16, 18));
#endif
  });
}
