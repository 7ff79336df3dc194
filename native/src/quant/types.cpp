// Type table and scalar conversions. The table lists every type id a GGUF file can hold today, so the
// reader can size (and bound-check) tensors of types the engine does not compute with; whether a
// type is usable is a separate question answered by type_supported().
#include "quant/types.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace hcattn::quant {
namespace {

struct TypeInfo {
  const char* name;
  int block_elems;   // 0: id not in use (removed types)
  size_t block_bytes;
};

// Indexed by type id; FORMATS.md §1.4. Ids 31-33 and 36-38 were run-time repacked layouts that
// never appear in files; 4 and 5 were removed formats.
constexpr TypeInfo kTypes[] = {
    {"F32", 1, 4},          // 0
    {"F16", 1, 2},          // 1
    {"Q4_0", 32, 18},       // 2
    {"Q4_1", 32, 20},       // 3
    {"Q4_2", 0, 0},         // 4 (removed)
    {"Q4_3", 0, 0},         // 5 (removed)
    {"Q5_0", 32, 22},       // 6
    {"Q5_1", 32, 24},       // 7
    {"Q8_0", 32, 34},       // 8
    {"Q8_1", 32, 36},       // 9
    {"Q2_K", 256, 84},      // 10
    {"Q3_K", 256, 110},     // 11
    {"Q4_K", 256, 144},     // 12
    {"Q5_K", 256, 176},     // 13
    {"Q6_K", 256, 210},     // 14
    {"Q8_K", 256, 292},     // 15
    {"IQ2_XXS", 256, 66},   // 16
    {"IQ2_XS", 256, 74},    // 17
    {"IQ3_XXS", 256, 98},   // 18
    {"IQ1_S", 256, 50},     // 19
    {"IQ4_NL", 32, 18},     // 20
    {"IQ3_S", 256, 110},    // 21
    {"IQ2_S", 256, 82},     // 22
    {"IQ4_XS", 256, 136},   // 23
    {"I8", 1, 1},           // 24
    {"I16", 1, 2},          // 25
    {"I32", 1, 4},          // 26
    {"I64", 1, 8},          // 27
    {"F64", 1, 8},          // 28
    {"IQ1_M", 256, 56},     // 29
    {"BF16", 1, 2},         // 30
    {"Q4_0_4_4", 0, 0},     // 31 (repacked, not in files)
    {"Q4_0_4_8", 0, 0},     // 32
    {"Q4_0_8_8", 0, 0},     // 33
    {"TQ1_0", 256, 54},     // 34
    {"TQ2_0", 256, 66},     // 35
    {"IQ4_NL_4_4", 0, 0},   // 36 (repacked, not in files)
    {"IQ4_NL_4_8", 0, 0},   // 37
    {"IQ4_NL_8_8", 0, 0},   // 38
    {"MXFP4", 32, 17},      // 39: one E8M0 scale byte + 16 bytes of 4-bit codes
};
constexpr int kTypeCount = static_cast<int>(sizeof(kTypes) / sizeof(kTypes[0]));

const TypeInfo* lookup(int32_t id) {
  if (id < 0 || id >= kTypeCount || kTypes[id].block_elems == 0) return nullptr;
  return &kTypes[id];
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

bool type_geometry(int32_t type_id, int* block_elems, size_t* block_bytes) {
  const TypeInfo* info = lookup(type_id);
  if (!info) return false;
  if (block_elems) *block_elems = info->block_elems;
  if (block_bytes) *block_bytes = info->block_bytes;
  return true;
}

bool type_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

const char* type_name(GgmlType t) {
  const int32_t id = static_cast<int32_t>(t);
  if (id < 0 || id >= kTypeCount) return "unknown";
  return kTypes[id].name;
}

size_t row_size(GgmlType t, int64_t n) {
  int block_elems = 0;
  size_t block_bytes = 0;
  if (!type_geometry(static_cast<int32_t>(t), &block_elems, &block_bytes)) {
    throw Error("row_size: unknown tensor type id " + std::to_string(static_cast<int32_t>(t)));
  }
  if (n < 0 || n % block_elems != 0) {
    throw Error(std::string("row_size: ") + std::to_string(n) + " elements is not a multiple of the " +
                type_name(t) + " block size " + std::to_string(block_elems));
  }
  return static_cast<size_t>(n / block_elems) * block_bytes;
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (mant << 13));  // inf, NaN keeps its payload
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  // Subnormal half: mant * 2^-24. Normalise so the leading 1 moves to bit 10; every half subnormal
  // is a normal float, so this is exact.
  int e = 113;  // float biased exponent of 2^-14, the exponent the mantissa would have if normal
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return bits_float(sign | (static_cast<uint32_t>(e) << 23) | ((mant & 0x3FFu) << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t bits = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t x = bits & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return sign | 0x7E00u;  // NaN -> quiet NaN
  if (x >= 0x38800000u) {
    // Normal half range (|f| >= 2^-14). Round the 13 dropped mantissa bits to nearest even; a carry
    // out of the mantissa correctly bumps the exponent, and anything at or past 65520 becomes inf.
    const uint32_t rounded = x + 0xFFFu + ((x >> 13) & 1u);
    const uint32_t h = (rounded - 0x38000000u) >> 13;
    return sign | static_cast<uint16_t>(h >= 0x7C00u ? 0x7C00u : h);
  }
  if (x <= 0x33000000u) return sign;  // |f| <= 2^-25: rounds to zero (the tie goes to even 0)
  // Subnormal half: value in units of 2^-24 is m * 2^(e - 126), with shift 126 - e in [14, 24].
  const uint32_t e = x >> 23;
  const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - e;
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u))) ++h;  // may carry into the smallest normal, 0x0400
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_fp32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t bits = float_bits(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace hcattn::quant
