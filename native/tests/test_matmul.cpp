// Every weight type x every SIMD level this CPU has x decode and prefill token counts x odd row counts:
// matmul() must equal matmul_reference() (dequantized weights, the same activation rounding, dot in
// double).
//
// Tolerance: |y - ref| <= 2e-5 * sum_i |w_i * x_i|. The kernels' integer block sums are exact; what
// differs from the reference is float rounding in the per-block scale products and in the running
// sum (and in the reference's own float dequantization d*sc*q - dmin*m). Each of at most ~1000
// roundings is 2^-24 relative to a term no larger than sum |w_i x_i|, and they add up like a random
// walk (~sqrt(n) * 6e-8 ~ 2e-6), so 2e-5 leaves a margin of 10 while a wrong scale, a wrong nibble or
// a lost block (errors of order 1/cols of the magnitude or more, >= 1e-3 here) still fails.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/matmul.h"
#include "cpu/matmul_kernels.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn;
using quant::GgmlType;

namespace {

void put_half(uint8_t* p, float v) {
  const uint16_t h = quant::fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Random weights: random codes everywhere, then well-formed half scales (random bytes would include
// infinities and NaNs).
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  const size_t row_bytes = quant::row_size(t, cols);
  std::vector<uint8_t> data(row_bytes * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> val(-1.0f, 1.0f), scale(0.001f, 0.02f);
  const int64_t n = rows * cols;
  switch (t) {
    case GgmlType::F32:
      for (int64_t i = 0; i < n; ++i) {
        const float v = val(rng);
        std::memcpy(data.data() + 4 * i, &v, 4);
      }
      break;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) put_half(data.data() + 2 * i, val(rng));
      break;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = quant::fp32_to_bf16(val(rng));
        std::memcpy(data.data() + 2 * i, &h, 2);
      }
      break;
    case GgmlType::Q4_0:
      for (int64_t b = 0; b < n / 32; ++b) put_half(data.data() + 18 * b, scale(rng));
      break;
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < n / 32; ++b) put_half(data.data() + 34 * b, scale(rng));
      break;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const size_t bb = t == GgmlType::Q4_K ? 144 : 176;
      for (int64_t b = 0; b < n / 256; ++b) {
        put_half(data.data() + bb * b, scale(rng));
        put_half(data.data() + bb * b + 2, scale(rng));
      }
      break;
    }
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < n / 256; ++b) put_half(data.data() + 210 * b + 208, scale(rng));
      break;
    default:
      break;
  }
  return data;
}

// Sum over i of |w_i * x_i| per (token, row): the scale of the rounding error.
std::vector<double> magnitudes(const cpu::WeightView& w, const std::vector<float>& x, int64_t n_tokens) {
  std::vector<double> mag(static_cast<size_t>(w.rows * n_tokens));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    quant::dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes, row.data(), w.cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0;
      for (int64_t i = 0; i < w.cols; ++i) s += std::fabs(static_cast<double>(row[i]) * x[t * w.cols + i]);
      mag[t * w.rows + r] = s;
    }
  }
  return mag;
}

int64_t cols_for(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return 768;  // three super-blocks
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: return 416;  // 13 blocks: an odd count
    default: return 200;             // not a multiple of any vector width
  }
}

void check_type(GgmlType t, cpu::ThreadPool& pool, std::mt19937& rng) {
  const int64_t cols = cols_for(t);
  const int64_t row_counts[] = {1, 17, 67};
  // 1: decode; 2-11: the per-token path below the panel thresholds and every partial token tile of the
  // panel kernels (tiles of 8 and 6 tokens on AVX-512, 4 on AVX2); 17, 64: many full tiles.
  const int64_t token_counts[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 17, 64};
  std::normal_distribution<float> act(0.0f, 1.0f);
  for (int64_t rows : row_counts) {
    const std::vector<uint8_t> data = random_weights(t, rows, cols, rng);
    const cpu::WeightView w{t, data.data(), rows, cols, quant::row_size(t, cols)};
    for (int64_t n_tokens : token_counts) {
      std::vector<float> x(static_cast<size_t>(cols * n_tokens));
      for (float& v : x) v = act(rng);
      x[0] = 0.0f;  // a zero and a tie-prone exact value among the activations
      x[1] = 0.5f;
      std::vector<float> ref(static_cast<size_t>(rows * n_tokens));
      cpu::matmul_reference(w, x.data(), n_tokens, ref.data());
      const std::vector<double> mag = magnitudes(w, x, n_tokens);
      for (int level = 0; level <= static_cast<int>(cpu::simd_level()); ++level) {
        std::vector<float> y(ref.size(), std::nanf(""));
        cpu::matmul_at_level(static_cast<cpu::SimdLevel>(level), w, x.data(), n_tokens, y.data(), pool);
        double worst = 0;
        size_t worst_i = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          const double err = std::fabs(static_cast<double>(y[i]) - ref[i]) / (mag[i] + 1e-30);
          if (!(err <= worst)) {
            worst = err;
            worst_i = i;
          }
        }
        CHECK(worst <= 2e-5);
        if (!(worst <= 2e-5)) {
          std::fprintf(stderr, "  %s level %s rows %lld tokens %lld: y[%zu] = %.9g, reference %.9g (rel err %.3g)\n",
                       quant::type_name(t), cpu::simd_level_name(static_cast<cpu::SimdLevel>(level)),
                       static_cast<long long>(rows), static_cast<long long>(n_tokens), worst_i, y[worst_i],
                       ref[worst_i], worst);
        }
      }
    }
  }
}

}  // namespace

int main() {
  std::printf("simd level: %s\n", cpu::simd_level_name(cpu::simd_level()));
  std::mt19937 rng(1234);
  cpu::ThreadPool pool(2);
  cpu::ThreadPool pool3(3);  // more threads than this machine may have cores: uneven row splits
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                            GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (GgmlType t : types) {
    check_type(t, pool, rng);
    check_type(t, pool3, rng);
  }

  // A hand-checkable product: Q8_0 weights of all ones (d = 1) times x = 1..32 on one block.
  {
    quant::BlockQ8_0 wb{};
    wb.d = quant::fp32_to_fp16(1.0f);
    for (int j = 0; j < 32; ++j) wb.qs[j] = 1;
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j + 1);
    const cpu::WeightView w{GgmlType::Q8_0, &wb, 1, 32, sizeof wb};
    float y = 0;
    cpu::matmul(w, x.data(), 1, &y, pool);
    // amax = 32: d = 32/127 (as half), q_j = round(j * 127/32); sum of q_j times half(d).
    int qsum = 0;
    for (int j = 1; j <= 32; ++j) qsum += static_cast<int>(std::nearbyint(j * (127.0f / 32.0f)));
    CHECK_NEAR(y, qsum * quant::fp16_to_fp32(quant::fp32_to_fp16(32.0f / 127.0f)), 1e-4);
  }

  // Bad views are errors that name the problem.
  {
    float x[32] = {}, y[1];
    std::vector<uint8_t> q(18);
    bool threw = false;
    try {
      cpu::matmul(cpu::WeightView{GgmlType::Q4_0, q.data(), 1, 33, 18}, x, 1, y, pool);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("block size") != std::string::npos;
    }
    CHECK(threw);
    threw = false;
    try {
      cpu::matmul(cpu::WeightView{GgmlType::Q2_K, q.data(), 1, 256, 84}, x, 1, y, pool);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("Q2_K") != std::string::npos;
    }
    CHECK(threw);
  }
  return test_summary("matmul");
}
