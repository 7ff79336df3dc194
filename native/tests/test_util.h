// Minimal assertion helpers for the native tests (each test is its own ctest executable).
#pragma once
#include <cmath>
#include <cstdio>
#include <string>

namespace hcattn_test {
inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}
}  // namespace hcattn_test

#define CHECK(cond)                                                              \
  do {                                                                           \
    ++hcattn_test::checks();                                                     \
    if (!(cond)) {                                                               \
      ++hcattn_test::failures();                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                              \
  do {                                                                                     \
    ++hcattn_test::checks();                                                               \
    const double va_ = (a), vb_ = (b);                                                     \
    if (!(std::fabs(va_ - vb_) <= (tol))) {                                                \
      ++hcattn_test::failures();                                                           \
      std::fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s=%g %s=%g tol=%g\n", __FILE__, __LINE__, \
                   #a, va_, #b, vb_, (double)(tol));                                       \
    }                                                                                      \
  } while (0)

// Prints "<name>: N checks, M failed" and returns the process exit code.
inline int test_summary(const char* name) {
  std::printf("%s: %d checks, %d failed\n", name, hcattn_test::checks(), hcattn_test::failures());
  return hcattn_test::failures() == 0 ? 0 : 1;
}
