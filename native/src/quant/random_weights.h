// Random but well-formed weight matrices in GGUF block layout, for kernel tests, op checks and
// benchmarks: random code bytes, then small positive half scales where the format keeps them (random
// bytes there would include infinities and NaNs), and values in [-1, 1) for the float types.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/types.h"

namespace hcattn::quant {

// rows x cols weights of type t (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), the same bytes for
// the same seed. Block scales are uniform in [0.001, 0.02). Throws hcattn::Error for another type or
// a cols that is not a whole number of blocks.
std::vector<uint8_t> random_weights(GgmlType t, int64_t rows, int64_t cols, uint64_t seed);

}  // namespace hcattn::quant
