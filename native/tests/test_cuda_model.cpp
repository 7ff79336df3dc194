// The whole model on the CUDA backend against the CPU backend, on small random-weight models written
// for the test and on the fixtures (build/test-data) that exist: log-probabilities over the full
// vocabulary at 160 positions (a chunked prefill, then single-token decodes), max |Δ| <= 1e-3 for
// the F32 models (rope_freqs, linear, YaRN), argmax agreement >= 99% for F16 and quantized weights,
// the F16 full cache and an HCAttention budget (host cache). Skipped (exit 77) with the reason when
// no CUDA device is usable.
#include <cstdlib>

#include "cuda_test.h"

#ifdef HCATTN_WITH_CUDA
#include "cuda/model_checks.h"
#endif

int main() {
#ifdef HCATTN_WITH_CUDA
  const char* env = std::getenv("HCATTN_TEST_DATA");
  const std::string dir = env ? env : "build/test-data";
  return cuda_test_main("test_cuda_model", [&] {
    for (const hcattn::cuda::CheckResult& r : hcattn::cuda::check_random_models(1)) report(r);
    std::vector<std::string> missing;
    for (const hcattn::cuda::CheckResult& r : hcattn::cuda::check_models(dir, 1, &missing)) report(r);
    for (const std::string& m : missing)
      std::printf("note: fixture %s/%s not found (npm run fixtures writes it)\n", dir.c_str(), m.c_str());
  });
#else
  return cuda_test_main("test_cuda_model", {});
#endif
}
