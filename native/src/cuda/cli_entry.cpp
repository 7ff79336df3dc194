#include "cuda/cli_entry.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "cuda/device.h"
#include "cuda/model_checks.h"
#include "cuda/op_checks.h"

namespace hcattn::cuda {

int cuda_selftest(int argc, char** argv) {
  std::string reason;
  if (!device_usable(&reason)) {
    std::printf("cuda test: skipped: %s\n", reason.c_str());
    return 77;
  }
  const DeviceProbe probe = probe_devices();
  std::printf("cuda test on %s (sm_%d, %.1f GiB)\n", probe.name.c_str(), probe.compute_capability,
              static_cast<double>(probe.total_memory) / (1 << 30));
  uint64_t seed = 1;
  const char* env = std::getenv("HCATTN_TEST_DATA");
  std::string models = env ? env : "build/test-data";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::string(argv[i]) == "--models") models = argv[i + 1];
  }
  try {
    int failed = 0;
    // Ops (weight products, norm, RoPE, SwiGLU, attention, HCAttention LUT/scores/selection/value
    // sums) first, then whole models on the fixtures that are present.
    std::vector<CheckResult> results = run_all_checks(seed);
    std::vector<std::string> missing;
    std::vector<CheckResult> model_results = check_random_models(seed);
    const std::vector<CheckResult> fixture_results = check_models(models, seed, &missing);
    model_results.insert(model_results.end(), fixture_results.begin(), fixture_results.end());
    results.insert(results.end(), model_results.begin(), model_results.end());
    for (const std::string& m : missing) std::printf("note: whole-model check skipped, %s/%s not found\n", models.c_str(), m.c_str());
    for (const CheckResult& r : results) {
      std::printf("%-4s %-40s err %-10.3g bound %-8.2g %s\n", r.passed ? "ok" : "FAIL", r.op.c_str(), r.error, r.bound,
                  r.shape.c_str());
      if (!r.passed) {
        std::printf("     %s\n", r.detail.c_str());
        ++failed;
      }
    }
    std::printf("cuda test: %zu comparisons (%zu whole-model), %d failed\n", results.size(), model_results.size(), failed);
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("cuda test: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace hcattn::cuda
