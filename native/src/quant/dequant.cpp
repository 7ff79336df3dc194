// Scalar reference dequantization (FORMATS.md §2.2, §2.3). These loops are the oracle the SIMD
// kernels are tested against, so they follow the stored layout literally and evaluate every value
// with the same float operations, in the same order, as ggml's reference code.
#include <cstring>
#include <string>

#include "common/error.h"
#include "quant/kquant_scales.h"
#include "quant/types.h"

namespace hcattn::quant {
namespace {

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

float load_half(const uint8_t* p) { return fp16_to_fp32(load_u16(p)); }

// 4-bit code of element j (0..31) of a legacy block: low nibbles hold elements 0..15, high nibbles
// elements 16..31.
int nibble(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }

void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(nibble(qs, j) - 8) * d;
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const float m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(nibble(qs, j)) * d + m;
}

void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < QK; ++j) {
    const int q = nibble(qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
    y[j] = static_cast<float>(q - 16) * d;
  }
}

void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < QK; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// Q4_K and Q5_K share everything but the fifth bit (qh == nullptr for Q4_K).
void dequant_k4_k5(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = load_half(b);
  const float dmin = load_half(b + 2);
  int sc[8], mn[8];
  unpack_k4_scales(b + 4, sc, mn);
  for (int sub = 0; sub < 8; ++sub) {
    const float d1 = d * static_cast<float>(sc[sub]);
    const float m1 = dmin * static_cast<float>(mn[sub]);
    const uint8_t* q = qs + 32 * (sub / 2);
    const int high_nibble = sub & 1;
    for (int l = 0; l < 32; ++l) {
      int v = high_nibble ? (q[l] >> 4) : (q[l] & 0x0F);
      if (qh && ((qh[l] >> sub) & 1)) v += 16;
      y[32 * sub + l] = d1 * static_cast<float>(v) - m1;
    }
  }
}

void dequant_q4_k(const uint8_t* b, float* y) { dequant_k4_k5(b, nullptr, b + 16, y); }

void dequant_q5_k(const uint8_t* b, float* y) { dequant_k4_k5(b, b + 16, b + 48, y); }

void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int e = 0; e < QK_K; ++e) {
    const int n = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t low_byte = ql[64 * n + (g & 1) * 32 + l];
    const int low4 = g < 2 ? (low_byte & 0x0F) : (low_byte >> 4);
    const int high2 = (qh[32 * n + l] >> (2 * g)) & 3;
    const int q = (low4 | (high2 << 4)) - 32;
    y[e] = d * static_cast<float>(scales[e / 16]) * static_cast<float>(q);
  }
}

}  // namespace

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  // row_size() validates n against the block size and throws for unknown types.
  const size_t bytes = row_size(t, n);
  switch (t) {
    case GgmlType::F32:
      std::memcpy(dst, p, bytes);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(p + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(p + 2 * i));
      return;
    default:
      break;
  }
  void (*block_fn)(const uint8_t*, float*) = nullptr;
  int block_elems = 0;
  size_t block_bytes = 0;
  type_geometry(static_cast<int32_t>(t), &block_elems, &block_bytes);
  switch (t) {
    case GgmlType::Q4_0: block_fn = dequant_q4_0; break;
    case GgmlType::Q4_1: block_fn = dequant_q4_1; break;
    case GgmlType::Q5_0: block_fn = dequant_q5_0; break;
    case GgmlType::Q8_0: block_fn = dequant_q8_0; break;
    case GgmlType::Q4_K: block_fn = dequant_q4_k; break;
    case GgmlType::Q5_K: block_fn = dequant_q5_k; break;
    case GgmlType::Q6_K: block_fn = dequant_q6_k; break;
    default:
      throw Error(std::string("dequantize_row: tensor type ") + type_name(t) +
                  " cannot be dequantized by this engine");
  }
  const int64_t blocks = n / block_elems;
  for (int64_t i = 0; i < blocks; ++i) block_fn(p + i * block_bytes, dst + i * block_elems);
}

}  // namespace hcattn::quant
