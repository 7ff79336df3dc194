// Activation conversions (quant/activation.h): hand-computed Q8_0 and Q8_K blocks, every SIMD level
// bit-identical to the scalar definition, and round trips within half a quantization step.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cpu/features.h"
#include "quant/activation.h"
#include "test_util.h"

using namespace hcattn;
using quant::BlockQ8_0;
using quant::BlockQ8_K;

namespace {

std::vector<cpu::SimdLevel> levels() {
  std::vector<cpu::SimdLevel> out;
  for (int l = 0; l <= static_cast<int>(cpu::simd_level()); ++l) out.push_back(static_cast<cpu::SimdLevel>(l));
  return out;
}

// Q8_0 with amax = 127 (d = 1, multiplier 1) and amax = 63.5 (d = 0.5, multiplier 2): exact ties
// round to even, unlike the generic build's roundf (0.5 -> 1, 2.5 -> 3).
void check_q8_0_known() {
  std::vector<float> x(64, 0.0f);
  const float a[] = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, -126.5f};
  const int qa[] = {127, 0, 2, 2, 0, -2, -2, 3, -126};
  for (int i = 0; i < 9; ++i) x[i] = a[i];
  const float b[] = {-63.5f, 0.25f, 0.75f, 1.25f, 10.0f};
  const int qb[] = {-127, 0, 2, 2, 20};
  for (int i = 0; i < 5; ++i) x[32 + i] = b[i];
  for (cpu::SimdLevel level : levels()) {
    BlockQ8_0 y[2];
    quant::activation_kernels(level).q8_0(x.data(), y, 64);
    CHECK(quant::fp16_to_fp32(y[0].d) == 1.0f);
    CHECK(quant::fp16_to_fp32(y[1].d) == 0.5f);
    for (int i = 0; i < 9; ++i) CHECK(y[0].qs[i] == qa[i]);
    for (int i = 0; i < 5; ++i) CHECK(y[1].qs[i] == qb[i]);
    for (int i = 9; i < 32; ++i) CHECK(y[0].qs[i] == 0);
  }
}

// Q8_K, three super-blocks worked out by hand (FORMATS.md §2.4):
//   block 0: -127 comes first among the largest magnitudes, so max = -127, iscale = 1, d = 1;
//   block 1: +127 comes first, so max = 127, iscale = -1, d = -1 and every code flips sign;
//   block 2: all zero -> d = 0, codes and sums zero.
void check_q8_k_known() {
  std::vector<float> x(768, 0.0f);
  const float v0[] = {-127.0f, 127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f};
  for (int i = 0; i < 7; ++i) x[i] = v0[i];
  x[16] = 100.25f;
  x[255] = -64.5f;
  const float v1[] = {127.0f, -127.0f, 2.5f, 3.5f};
  for (int i = 0; i < 4; ++i) x[256 + i] = v1[i];
  x[256 + 200] = -0.5f;
  for (cpu::SimdLevel level : levels()) {
    BlockQ8_K y[3];
    std::memset(y, 0x55, sizeof y);
    quant::activation_kernels(level).q8_k(x.data(), y, 768);
    CHECK(y[0].d == 1.0f);
    const int q0[] = {-127, 127, 2, 4, -2, 0, 2};
    for (int i = 0; i < 7; ++i) CHECK(y[0].qs[i] == q0[i]);
    CHECK(y[0].qs[16] == 100);
    CHECK(y[0].qs[255] == -64);
    CHECK(y[0].bsums[0] == 6);
    CHECK(y[0].bsums[1] == 100);
    CHECK(y[0].bsums[15] == -64);
    for (int k = 2; k < 15; ++k) CHECK(y[0].bsums[k] == 0);

    CHECK(y[1].d == -1.0f);
    const int q1[] = {-127, 127, -2, -4};
    for (int i = 0; i < 4; ++i) CHECK(y[1].qs[i] == q1[i]);
    CHECK(y[1].qs[200] == 0);
    CHECK(y[1].bsums[0] == -6);
    for (int k = 1; k < 16; ++k) CHECK(y[1].bsums[k] == 0);

    CHECK(y[2].d == 0.0f);
    bool zero = true;
    for (int i = 0; i < 256; ++i) zero = zero && y[2].qs[i] == 0;
    for (int k = 0; k < 16; ++k) zero = zero && y[2].bsums[k] == 0;
    CHECK(zero);
  }
}

// Random rows (including scaled ones and ties): every level equals the scalar bytes exactly, and
// dequantizing gives back x within half a step.
void check_levels_and_round_trip() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 4096;
  const quant::ActivationKernels& ref = quant::activation_kernels(cpu::SimdLevel::Scalar);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<float> x(n);
    const float scale = std::pow(10.0f, static_cast<float>(trial - 3));
    for (float& v : x) v = normal(rng) * scale;
    for (int i = 0; i < 64; ++i) x[rng() % n] = std::nearbyint(x[i]) + 0.5f;  // halves
    std::vector<BlockQ8_0> r0(n / 32);
    std::vector<BlockQ8_K> rk(n / 256);
    std::vector<uint16_t> rh(n), rb(n);
    ref.q8_0(x.data(), r0.data(), n);
    ref.q8_k(x.data(), rk.data(), n);
    ref.f16(x.data(), rh.data(), n);
    ref.bf16(x.data(), rb.data(), n);
    for (cpu::SimdLevel level : levels()) {
      const quant::ActivationKernels& k = quant::activation_kernels(level);
      std::vector<BlockQ8_0> y0(n / 32);
      std::vector<BlockQ8_K> yk(n / 256);
      std::vector<uint16_t> yh(n), yb(n);
      k.q8_0(x.data(), y0.data(), n);
      k.q8_k(x.data(), yk.data(), n);
      k.f16(x.data(), yh.data(), n);
      k.bf16(x.data(), yb.data(), n);
      CHECK(std::memcmp(y0.data(), r0.data(), y0.size() * sizeof(BlockQ8_0)) == 0);
      CHECK(std::memcmp(yk.data(), rk.data(), yk.size() * sizeof(BlockQ8_K)) == 0);
      CHECK(yh == rh);
      CHECK(yb == rb);
    }
    // Round trips. Q8_K: |x - q*d| <= d/2. Q8_0: the codes are rounded with the exact step amax/127
    // but stored with d rounded to half, so |x - q*d| <= step/2 + 127*|d - step|.
    double worst0 = 0, worstk = 0;
    for (int64_t i = 0; i < n; ++i) {
      const BlockQ8_0& b0 = r0[i / 32];
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[i / 32 * 32 + j]));
      const double step = amax / 127.0, d0 = quant::fp16_to_fp32(b0.d);
      const double bound = step / 2 + 127 * std::fabs(d0 - step) + 1e-12;
      worst0 = std::fmax(worst0, std::fabs(x[i] - b0.qs[i % 32] * d0) / bound);
      const BlockQ8_K& bk = rk[i / 256];
      worstk = std::fmax(worstk, std::fabs(x[i] - bk.qs[i % 256] * bk.d) / std::fabs(bk.d));
    }
    CHECK(worst0 <= 1.0);
    CHECK(worstk <= 0.5 + 1e-4);
    for (int64_t i = 0; i < n; ++i) {
      const float h = quant::fp16_to_fp32(rh[i]), b = quant::bf16_to_fp32(rb[i]);
      if (std::fabs(x[i]) > 6.2e-5f && std::fabs(x[i]) < 65000.0f) CHECK(std::fabs(h - x[i]) <= std::fabs(x[i]) * 0x1p-11f);
      CHECK(std::fabs(b - x[i]) <= std::fabs(x[i]) * 0x1p-8f);
    }
  }
}

// F16 / BF16 special values at every level: overflow to inf, subnormal halves, zeros, inf, NaN.
void check_specials() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e6f, -1e6f, inf, -inf, 5.96e-8f, 2.98e-8f,
                          3e-8f, 6.1e-5f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1e-40f, std::nanf("")};
  while (x.size() < 35) x.push_back(static_cast<float>(x.size()) * 0.37f);  // a vector tail
  std::vector<uint16_t> rh(x.size()), rb(x.size());
  quant::activation_kernels(cpu::SimdLevel::Scalar).f16(x.data(), rh.data(), x.size());
  quant::activation_kernels(cpu::SimdLevel::Scalar).bf16(x.data(), rb.data(), x.size());
  CHECK(rh[2] == 0x7BFF);  // 65504: the largest half
  CHECK(rh[3] == 0x7C00);  // 65520 rounds to inf
  CHECK(rh[8] == 0x0001);  // 2^-24: the smallest subnormal
  CHECK(rh[12] == 0x3C00);  // 1 + 2^-11: a tie, to even (1.0)
  CHECK(rh[13] == 0x3C02);  // 1 + 3*2^-11: a tie, to even (1 + 2^-9)
  CHECK((rh[15] & 0x7C00) == 0x7C00 && (rh[15] & 0x03FF) != 0);
  CHECK((rb[15] & 0x7F80) == 0x7F80 && (rb[15] & 0x007F) != 0);
  for (cpu::SimdLevel level : levels()) {
    std::vector<uint16_t> yh(x.size()), yb(x.size());
    quant::activation_kernels(level).f16(x.data(), yh.data(), x.size());
    quant::activation_kernels(level).bf16(x.data(), yb.data(), x.size());
    CHECK(yh == rh);
    CHECK(yb == rb);
  }
}

}  // namespace

int main() {
  std::printf("simd level: %s\n", cpu::simd_level_name(cpu::simd_level()));
  check_q8_0_known();
  check_q8_k_known();
  check_levels_and_round_trip();
  check_specials();
  return test_summary("matmul_activation");
}
