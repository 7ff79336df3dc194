#include "quant/random_weights.h"

#include <cstddef>
#include <cstring>
#include <random>
#include <string>

#include "common/error.h"

namespace hcattn::quant {

namespace {

void put_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, uint64_t seed) {
  const size_t row_bytes = row_size(t, cols);  // throws when cols is not a whole number of blocks
  std::vector<uint8_t> data(row_bytes * static_cast<size_t>(rows));
  std::mt19937_64 rng(seed);
  // Eight random bytes per draw: the benchmarks fill hundreds of megabytes.
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(&data[i], &r, 8);
  }
  for (; i < data.size(); ++i) data[i] = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> value(-1.0f, 1.0f), scale(0.001f, 0.02f);
  const int64_t n = rows * cols;
  // Half scales at byte `offset` of every block of `block_bytes` bytes and `block_elems` elements.
  auto scales_at = [&](size_t block_bytes, int block_elems, size_t offset) {
    for (int64_t b = 0; b < n / block_elems; ++b) put_u16(&data[block_bytes * b + offset], fp32_to_fp16(scale(rng)));
  };
  switch (t) {
    case GgmlType::F32:
      for (int64_t k = 0; k < n; ++k) {
        const float v = value(rng);
        std::memcpy(&data[4 * k], &v, 4);
      }
      break;
    case GgmlType::F16:
      for (int64_t k = 0; k < n; ++k) put_u16(&data[2 * k], fp32_to_fp16(value(rng)));
      break;
    case GgmlType::BF16:
      for (int64_t k = 0; k < n; ++k) put_u16(&data[2 * k], fp32_to_bf16(value(rng)));
      break;
    case GgmlType::Q4_0: scales_at(sizeof(BlockQ4_0), QK, 0); break;
    case GgmlType::Q8_0: scales_at(sizeof(BlockQ8_0), QK, 0); break;
    case GgmlType::Q4_K:
      scales_at(sizeof(BlockQ4_K), QK_K, 0);  // d
      scales_at(sizeof(BlockQ4_K), QK_K, 2);  // dmin
      break;
    case GgmlType::Q5_K:
      scales_at(sizeof(BlockQ5_K), QK_K, 0);
      scales_at(sizeof(BlockQ5_K), QK_K, 2);
      break;
    case GgmlType::Q6_K: scales_at(sizeof(BlockQ6_K), QK_K, offsetof(BlockQ6_K, d)); break;
    default:
      throw Error(std::string("random_weights: no generator for type ") + type_name(t) +
                  " (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K have one)");
  }
  return data;
}

}  // namespace hcattn::quant
