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
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "cpu/matmul.h"
#include "cpu/matmul_kernels.h"
#include "quant/random_weights.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn;
using quant::GgmlType;

namespace {

void put_half(uint8_t* p, float v) {
  const uint16_t h = quant::fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Random weights (quant/random_weights.h), seeded from the test's generator.
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  return quant::random_weights(t, rows, cols, rng());
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

// Weights whose integer dot products are as large as the format allows, for the overflow hazards of
// the kernels' narrow (16-bit) partial sums: every code at its largest (or, for the signed types, its
// most negative) value and every sub-block scale and min at its largest. `pattern` picks the variant:
// 0 = largest codes, 1 = smallest codes (Q6_K: -32, Q4_0: -8, Q8_0: -128), 2 = random codes with the
// largest scales.
std::vector<uint8_t> extreme_weights(GgmlType t, int64_t rows, int64_t cols, int pattern, std::mt19937& rng) {
  const size_t row_bytes = quant::row_size(t, cols);
  std::vector<uint8_t> data(row_bytes * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : data) b = pattern == 0 ? 0xFF : pattern == 1 ? 0x00 : static_cast<uint8_t>(byte(rng));
  const int64_t n = rows * cols;
  switch (t) {
    case GgmlType::Q4_0:
      for (int64_t b = 0; b < n / 32; ++b) put_half(data.data() + 18 * b, 0.01f);
      break;
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        put_half(data.data() + 34 * b, 0.01f);
        if (pattern != 2) std::memset(data.data() + 34 * b + 2, pattern == 0 ? 0x7F : 0x80, 32);
      }
      break;
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const size_t bb = t == GgmlType::Q4_K ? 144 : 176;
      for (int64_t b = 0; b < n / 256; ++b) {
        put_half(data.data() + bb * b, 0.01f);
        put_half(data.data() + bb * b + 2, 0.003f);
        std::memset(data.data() + bb * b + 4, 0xFF, 12);  // all scales and mins 63
      }
      break;
    }
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < n / 256; ++b) {
        // Scales -128 where the codes are -32 (the largest positive products), 127 otherwise.
        std::memset(data.data() + 210 * b + 192, pattern == 1 ? 0x80 : 0x7F, 16);
        put_half(data.data() + 210 * b + 208, 0.01f);
      }
      break;
    default:
      break;
  }
  return data;
}

// Activations that quantize to many values at +-127: every one of magnitude 1 (so every Q8_0 and Q8_K
// element is +-127 after quantization), with signs per `pattern`: 0 all +1, 1 all -1, 2 random, 3 one
// sign per token. A few tokens get a different pattern, so a tile mixes them.
std::vector<float> extreme_activations(int64_t cols, int64_t n_tokens, int pattern, std::mt19937& rng) {
  std::vector<float> x(static_cast<size_t>(cols * n_tokens));
  std::bernoulli_distribution coin(0.5);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int p = t % 5 == 4 ? 2 : pattern;
    const bool token_negative = t % 2 == 1;
    for (int64_t i = 0; i < cols; ++i) {
      const bool negative = p == 0 ? false : p == 1 ? true : p == 2 ? coin(rng) : token_negative;
      x[t * cols + i] = negative ? -1.0f : 1.0f;
    }
  }
  return x;
}

// Every SIMD level against the reference on weights and activations at the extremes of the integer
// ranges: an int16 partial sum that saturates or wraps is off by thousands of units, far outside the
// rounding tolerance.
void check_extremes(GgmlType t, cpu::ThreadPool& pool, std::mt19937& rng) {
  const int64_t cols = t == GgmlType::Q4_0 || t == GgmlType::Q8_0 ? 256 : 512;
  const int64_t rows = 19;  // one full panel at either width and a partial one
  const int64_t token_counts[] = {1, 3, 4, 5, 6, 7, 8, 9, 12, 13};
  for (int wp = 0; wp < 3; ++wp) {
    const std::vector<uint8_t> data = extreme_weights(t, rows, cols, wp, rng);
    const cpu::WeightView w{t, data.data(), rows, cols, quant::row_size(t, cols)};
    for (int xp = 0; xp < 4; ++xp) {
      for (int64_t n_tokens : token_counts) {
        const std::vector<float> x = extreme_activations(cols, n_tokens, xp, rng);
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
            std::fprintf(stderr, "  extreme %s weights %d acts %d level %s tokens %lld: y[%zu] = %.9g, reference %.9g (rel err %.3g)\n",
                         quant::type_name(t), wp, xp, cpu::simd_level_name(static_cast<cpu::SimdLevel>(level)),
                         static_cast<long long>(n_tokens), worst_i, y[worst_i], ref[worst_i], worst);
          }
        }
      }
    }
  }
}

// Every K-quant kernel (decode and prefill panels, every level) must round exactly as the scalar
// kernel: a prompt's hidden state must not depend on how it was batched. A last-bit difference flips
// a round-half-even decision of the next layer's Q8_K quantization, which moved the model's
// log-probabilities by up to 3e-2 against llama.cpp on a Q4_K model; the tolerance tests above cannot
// see it. Real activations after RMSNorm have an outlier channel, as here.
void check_k_quants_match_scalar(GgmlType t, cpu::ThreadPool& pool, std::mt19937& rng) {
  const int64_t cols = 1024, rows = 37;
  const std::vector<uint8_t> data = random_weights(t, rows, cols, rng);
  const cpu::WeightView w{t, data.data(), rows, cols, quant::row_size(t, cols)};
  std::normal_distribution<float> act(0.0f, 1.0f);
  // Below 4 (AVX2) or 5 (AVX-512) tokens the rows are streamed per token; from there on, panels.
  for (int64_t n_tokens : {1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 24}) {
    std::vector<float> x(static_cast<size_t>(cols * n_tokens));
    for (float& v : x) v = act(rng);
    for (int64_t tok = 0; tok < n_tokens; ++tok) x[tok * cols + 77] = 25.0f;  // the outlier channel
    std::vector<float> scalar(static_cast<size_t>(rows * n_tokens));
    cpu::matmul_at_level(cpu::SimdLevel::Scalar, w, x.data(), n_tokens, scalar.data(), pool);
    for (int level = 1; level <= static_cast<int>(cpu::simd_level()); ++level) {
      std::vector<float> y(scalar.size(), std::nanf(""));
      cpu::matmul_at_level(static_cast<cpu::SimdLevel>(level), w, x.data(), n_tokens, y.data(), pool);
      size_t differing = 0, first = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        if (std::memcmp(&y[i], &scalar[i], sizeof(float)) != 0 && differing++ == 0) first = i;
      }
      CHECK(differing == 0);
      if (differing != 0) {
        std::fprintf(stderr, "  %s level %s tokens %lld: %zu of %zu outputs differ from scalar, e.g. y[%zu] = %.9g vs %.9g\n",
                     quant::type_name(t), cpu::simd_level_name(static_cast<cpu::SimdLevel>(level)),
                     static_cast<long long>(n_tokens), differing, y.size(), first, y[first], scalar[first]);
      }
    }
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One dispatch for several products of the same input (Q/K/V; gate/up with SwiGLU) must give exactly
// what separate matmul() calls give, at every level, in decode and prefill, with mixed weight types
// (a Q4_K_M file mixes Q4_K and Q6_K; the Q8_0 block bias differs between Q4_0 and Q8_0) and row
// counts that do not split evenly into chunks.
void check_grouped_products(cpu::ThreadPool& pool, std::mt19937& rng) {
  const int64_t cols = 768;
  struct Case {
    GgmlType types[3];
    int64_t rows[3];
  };
  const Case cases[] = {{{GgmlType::Q4_0, GgmlType::Q4_0, GgmlType::Q4_0}, {96, 35, 35}},
                        {{GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K}, {64, 17, 17}},
                        {{GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16}, {50, 33, 1}}};
  std::normal_distribution<float> act(0.0f, 1.0f);
  for (const Case& c : cases) {
    std::vector<uint8_t> data[3];
    cpu::WeightView w[3];
    for (int i = 0; i < 3; ++i) {
      data[i] = random_weights(c.types[i], c.rows[i], cols, rng);
      w[i] = cpu::WeightView{c.types[i], data[i].data(), c.rows[i], cols, quant::row_size(c.types[i], cols)};
    }
    for (int64_t n_tokens : {1, 2, 9}) {
      std::vector<float> x(static_cast<size_t>(cols * n_tokens));
      for (float& v : x) v = act(rng);
      for (int level = 0; level <= static_cast<int>(cpu::simd_level()); ++level) {
        const auto lv = static_cast<cpu::SimdLevel>(level);
        std::vector<float> want[3], got[3];
        cpu::MatmulOut outs[3];
        for (int i = 0; i < 3; ++i) {
          want[i].assign(static_cast<size_t>(c.rows[i] * n_tokens), 0.0f);
          got[i].assign(want[i].size(), std::nanf(""));
          cpu::matmul_at_level(lv, w[i], x.data(), n_tokens, want[i].data(), pool);
          outs[i] = {&w[i], got[i].data()};
        }
        cpu::matmul_group_at_level(lv, outs, 3, x.data(), n_tokens, pool);
        bool same = true;
        for (int i = 0; i < 3; ++i) same = same && same_bits(got[i], want[i]);
        CHECK(same);
        if (!same) {
          std::fprintf(stderr, "  matmul_group %s/%s/%s level %s tokens %lld differs from separate matmuls\n",
                       quant::type_name(c.types[0]), quant::type_name(c.types[1]), quant::type_name(c.types[2]),
                       cpu::simd_level_name(lv), static_cast<long long>(n_tokens));
        }
      }
    }
  }
  // gate/up/SwiGLU, at the build's level (the fused form has no level parameter).
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_K}) {
    const int64_t rows = 83;
    const std::vector<uint8_t> gd = random_weights(t, rows, cols, rng), ud = random_weights(t, rows, cols, rng);
    const cpu::WeightView wg{t, gd.data(), rows, cols, quant::row_size(t, cols)};
    const cpu::WeightView wu{t, ud.data(), rows, cols, quant::row_size(t, cols)};
    for (int64_t n_tokens : {1, 7}) {
      std::vector<float> x(static_cast<size_t>(cols * n_tokens));
      for (float& v : x) v = 4.0f * act(rng);
      std::vector<float> gate(static_cast<size_t>(rows * n_tokens)), up(gate.size());
      cpu::matmul(wg, x.data(), n_tokens, gate.data(), pool);
      cpu::matmul(wu, x.data(), n_tokens, up.data(), pool);
      cpu::swiglu(gate.data(), up.data(), static_cast<int64_t>(gate.size()));
      std::vector<float> fused(gate.size(), std::nanf("")), scratch(gate.size());
      cpu::matmul_swiglu(wg, wu, x.data(), n_tokens, fused.data(), scratch.data(), pool);
      CHECK(same_bits(fused, gate));
      // The values are real SwiGLU outputs: silu(g) * u against a direct evaluation in double.
      std::vector<float> g(gate.size());
      cpu::matmul(wg, x.data(), n_tokens, g.data(), pool);
      double worst = 0;
      for (size_t i = 0; i < g.size(); ++i) {
        const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * up[i];
        worst = std::max(worst, std::fabs(fused[i] - want) / (std::fabs(want) + 1e-6));
      }
      CHECK(worst < 1e-5);
    }
  }
  // Mismatched shapes are errors that say which.
  {
    const std::vector<uint8_t> a = random_weights(GgmlType::Q4_0, 16, 64, rng), b = random_weights(GgmlType::Q4_0, 16, 96, rng);
    const cpu::WeightView wa{GgmlType::Q4_0, a.data(), 16, 64, quant::row_size(GgmlType::Q4_0, 64)};
    const cpu::WeightView wb{GgmlType::Q4_0, b.data(), 16, 96, quant::row_size(GgmlType::Q4_0, 96)};
    std::vector<float> x(96), y1(16), y2(16);
    const cpu::MatmulOut outs[] = {{&wa, y1.data()}, {&wb, y2.data()}};
    bool threw = false;
    try {
      cpu::matmul_group(outs, 2, x.data(), 1, pool);
    } catch (const Error& e) {
      threw = std::string(e.what()).find("same column count") != std::string::npos;
    }
    CHECK(threw);
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
  const GgmlType integer_types[] = {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (GgmlType t : integer_types) check_extremes(t, pool, rng);
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) check_k_quants_match_scalar(t, pool, rng);
  check_grouped_products(pool, rng);
  check_grouped_products(pool3, rng);

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
