// HCAttention on the GPU against the CPU's kv functions: LUT build and code scores bit-identical to
// KeyCodebook::build_lut / kv::score_codes (LUT in shared memory and from global memory, vector and
// scalar code loads); top-p selection with the same index sets as kv::select_tokens for plain,
// margin, k_max, tied (boundary bin sorted in global memory), top_p 0 and 0.999, tiny and 2^20-token
// inputs; value sums from mapped pinned host memory against kv::attend_values_f16; and whole decode
// steps kept on the device (selection handed to the value sums in device memory) against the CPU chain.
// Skipped (exit 77) with the reason when no CUDA device is usable.
#include "cuda_test.h"

int main() {
  return cuda_test_main("test_cuda_hcattn", [] {
#ifdef HCATTN_WITH_CUDA
    using namespace hcattn;
    for (const auto& r : cuda::check_lut_scores(128, 64, 256, 5000, 4, 1)) report(r);
    for (const auto& r : cuda::check_lut_scores(128, 32, 1024, 3001, 4, 2)) report(r);
    for (const auto& r : cuda::check_lut_scores(128, 64, 4096, 1000, 1, 3)) report(r);  // 1 MiB LUT: global memory
    for (const auto& r : cuda::check_lut_scores(96, 12, 16, 777, 2, 4)) report(r);      // g not a multiple of 8

    kv::SelectParams p;
    report(cuda::check_selection(8, 20000, p, false, 5));
    report(cuda::check_selection(32, 4096, p, false, 6));
    p.margin = 0.5f;
    report(cuda::check_selection(4, 20000, p, false, 7));
    p.margin = 0;
    p.k_max = 50;
    report(cuda::check_selection(4, 20000, p, false, 8));
    p.k_max = 6000;
    report(cuda::check_selection(2, 50000, p, true, 9));
    report(cuda::check_selection(2, 30000, kv::SelectParams{}, true, 10));
    p = kv::SelectParams{};
    p.top_p = 0;
    report(cuda::check_selection(2, 5000, p, false, 11));
    // Not 1: there the cut falls where the running sum meets the total, i.e. on rounding alone.
    p.top_p = 0.999f;
    report(cuda::check_selection(2, 5000, p, false, 12));
    p = kv::SelectParams{};
    p.sinks = 0;
    p.recent = 0;
    report(cuda::check_selection(3, 10, p, false, 13));
    report(cuda::check_selection(1, 1, kv::SelectParams{}, false, 14));
    report(cuda::check_selection(1, 1 << 20, kv::SelectParams{}, false, 15));

    report(cuda::check_value_sums(8, 4, 20000, 128, 16));
    report(cuda::check_value_sums(4, 1, 3000, 64, 17));
    report(cuda::check_hc_decode_step(32, 4, 50000, 128, 32, 18));
    report(cuda::check_hc_decode_step(8, 4, 20000, 128, 64, 19));
#endif
  });
}
