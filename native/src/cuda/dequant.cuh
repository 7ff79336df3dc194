// Dequantization of GGUF weight rows inside kernels (nvcc only): eight consecutive elements at a
// time, for the weight products (matmul.cu) and the embedding lookup (embed.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/common.cuh"
#include "quant/types.h"

namespace hcattn::cuda {

using quant::GgmlType;

// Dequantizes elements k..k+7 (k a multiple of 8) of a row in GGUF block layout. Eight elements
// never cross a block or share more than one scale, so each type needs one scale lookup.
template <GgmlType T>
__device__ __forceinline__ void dequant8(const uint8_t* __restrict__ row, int k, float v[8]);

template <>
__device__ __forceinline__ void dequant8<GgmlType::Q4_0>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint8_t* b = row + (k >> 5) * 18;
  const float d = load_half(b);
  const int j = k & 31;  // low nibbles hold elements 0..15, high nibbles 16..31
  const uint8_t* qs = b + 2 + (j & 15);
  const int shift = j < 16 ? 0 : 4;
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(((qs[i] >> shift) & 0x0F) - 8) * d;
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::Q8_0>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint8_t* b = row + (k >> 5) * 34;
  const float d = load_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2 + (k & 31));
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(qs[i]) * d;
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::F16>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(row + 2 * static_cast<size_t>(k));
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::Q4_K>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint8_t* b = row + (k >> 8) * 144;
  const int e = k & 255;
  const int sub = e >> 5;  // 32-element sub-block with its own 6-bit scale and min
  const uint8_t* s = b + 4;
  int sc, mn;
  if (sub < 4) {
    sc = s[sub] & 63;
    mn = s[sub + 4] & 63;
  } else {
    sc = (s[sub + 4] & 0x0F) | ((s[sub - 4] >> 6) << 4);
    mn = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
  }
  const float d1 = load_half(b) * static_cast<float>(sc);
  const float m1 = load_half(b + 2) * static_cast<float>(mn);
  // Sub-blocks 2i and 2i+1 share 32 bytes: low nibbles for the even one, high for the odd one.
  const uint8_t* q = b + 16 + 32 * (sub >> 1) + (e & 31);
  const int shift = (sub & 1) ? 4 : 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = d1 * static_cast<float>((q[i] >> shift) & 0x0F) - m1;
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::Q6_K>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint8_t* b = row + (k >> 8) * 210;
  const int e = k & 255;
  const int n = e >> 7, g = (e & 127) >> 5, l = e & 31;
  const uint8_t* ql = b + 64 * n + (g & 1) * 32 + l;
  const uint8_t* qh = b + 128 + 32 * n + l;
  const float d = load_half(b + 208) * static_cast<float>(reinterpret_cast<const int8_t*>(b + 192)[e >> 4]);
  const int low_shift = g < 2 ? 0 : 4;
  const int high_shift = 2 * g;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int q = (((ql[i] >> low_shift) & 0x0F) | (((qh[i] >> high_shift) & 3) << 4)) - 32;
    v[i] = d * static_cast<float>(q);
  }
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::F32>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const float4* p = reinterpret_cast<const float4*>(row + 4 * static_cast<size_t>(k));
  const float4 a = p[0], b = p[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

template <>
__device__ __forceinline__ void dequant8<GgmlType::BF16>(const uint8_t* __restrict__ row, int k, float v[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(row + 2 * static_cast<size_t>(k));
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = __uint_as_float(w[i] << 16);
    v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

}  // namespace hcattn::cuda
