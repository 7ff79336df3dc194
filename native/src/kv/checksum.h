// CRC32C (Castagnoli polynomial, reflected 0x82F63B78): the per-section checksum of KV snapshots.
// Chosen over a cryptographic hash because it runs at memory speed with the SSE4.2 crc32 instruction,
// and any single-bit flip or burst of up to 32 bits in a section is guaranteed to change it.
//
// crc32c() picks the instruction path at run time (every AVX2 CPU has SSE4.2; HCATTN_SIMD=scalar forces
// the table path); both paths give the same value, so snapshots are portable between machines.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hcattn::kv {

// Continues a CRC: crc32c(b, nb, crc32c(a, na)) == crc32c(a ++ b). Start with 0.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// The two implementations behind crc32c(), for tests and benchmarks.
uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc = 0);
// Only call when the CPU has SSE4.2 (cpu::simd_level() >= Avx2).
uint32_t crc32c_sse42(const void* data, size_t n, uint32_t crc = 0);

}  // namespace hcattn::kv
