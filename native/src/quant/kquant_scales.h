// The 6-bit sub-block scales and mins of a Q4_K / Q5_K super-block (FORMATS.md §2.3), shared by the
// dequantizer and the matmul kernels so that both read the 12 packed bytes the same way.
#pragma once
#include <cstdint>

namespace hcattn::quant {

// s: the super-block's 12 scale bytes. Sub-blocks 0-3 keep their scale and min in the low 6 bits of
// bytes 0-3 and 4-7; sub-blocks 4-7 take the low 4 bits from bytes 8-11 (scale: low nibble, min: high
// nibble) and the top 2 bits from the spare high bits of bytes 0-3 (scale) and 4-7 (min).
inline void unpack_k4_scales(const uint8_t* s, int sc[8], int mn[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

}  // namespace hcattn::quant
