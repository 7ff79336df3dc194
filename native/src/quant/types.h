// ggml tensor types as stored in GGUF files (ids and block geometry from FORMATS.md §1.4), and the
// scalar conversions every kernel shares.
#pragma once
#include <cstddef>
#include <cstdint>

namespace hcattn::quant {

enum class GgmlType : int32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

constexpr int QK = 32;    // elements per legacy block
constexpr int QK_K = 256; // elements per K-quant super-block

// Block layouts (byte-exact with GGUF).
struct BlockQ4_0 { uint16_t d; uint8_t qs[QK / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK]; };
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292,
              "block layouts must match GGUF");

// Geometry of a type: elements per block and bytes per block. Returns false for ids we do not know.
bool type_geometry(int32_t type_id, int* block_elems, size_t* block_bytes);
// Whether the engine can compute with this type (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K).
bool type_supported(GgmlType t);
const char* type_name(GgmlType t);
// Bytes of a row of n elements (n must be a multiple of the block size).
size_t row_size(GgmlType t, int64_t n);

// IEEE half / bfloat16 conversions (round to nearest even, as ggml does).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

// Reference (scalar) dequantization of n elements of a row.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

}  // namespace hcattn::quant
