// What every CUDA test shares: the skip (exit 77 with the reason) when this build has no CUDA backend
// or no usable device, one printed line per comparison, and the summary. A test's body runs only
// where CUDA is compiled in, so it sits inside #ifdef HCATTN_WITH_CUDA; main() is
//   return cuda_test_main("test_cuda_x", [] { report(...); ... });
#pragma once
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#include "test_util.h"

#ifdef HCATTN_WITH_CUDA
#include "cuda/op_checks.h"

inline void report(const hcattn::cuda::CheckResult& r) {
  std::printf("%-4s %-36s err %.3g (bound %.2g) %s %s\n", r.passed ? "ok" : "FAIL", r.op.c_str(), r.error, r.bound,
              r.shape.c_str(), r.detail.c_str());
  CHECK(r.passed);
}

inline int cuda_test_main(const char* name, const std::function<void()>& body) {
  std::string why;
  if (!hcattn::cuda::device_usable(&why)) {
    std::printf("%s: skipped: %s\n", name, why.c_str());
    return 77;
  }
  try {
    body();
  } catch (const std::exception& e) {
    std::printf("%s: error: %s\n", name, e.what());
    CHECK(false);
  }
  return test_summary(name);
}

#else

inline int cuda_test_main(const char* name, const std::function<void()>&) {
  std::printf("%s: skipped: this build has no CUDA backend (configure with -DHCATTN_CUDA=ON where nvcc exists)\n", name);
  return 77;
}

#endif
