// The SSE4.2 crc32 instruction path of crc32c(); this file is compiled with -mavx2 (which includes
// SSE4.2) and only called after the run-time CPU check in checksum.cpp.
#include "kv/checksum.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <nmmintrin.h>
#endif

namespace hcattn::kv {

uint32_t crc32c_sse42(const void* data, size_t n, uint32_t crc) {
#if defined(__x86_64__) || defined(_M_X64)
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
#else
  return crc32c_portable(data, n, crc);
#endif
}

}  // namespace hcattn::kv
