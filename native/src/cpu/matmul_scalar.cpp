// Portable kernels: one dot product per (row, token), integer sums per block and float scaling per
// block as in ggml's generic code. They run on any CPU and are the fallback for every type.
#include <cstring>

#include "cpu/matmul_kernels.h"

namespace hcattn::cpu {

using quant::GgmlType;

namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float dot_f32(const uint8_t* w, const uint8_t* a, int64_t n) {
  const float* wf = reinterpret_cast<const float*>(w);
  const float* af = reinterpret_cast<const float*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += wf[i] * af[i];
  return sum;
}

float dot_f16(const uint8_t* w, const uint8_t* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    sum += quant::fp16_to_fp32(load_u16(w + 2 * i)) * quant::fp16_to_fp32(load_u16(a + 2 * i));
  }
  return sum;
}

float dot_bf16(const uint8_t* w, const uint8_t* a, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    sum += quant::bf16_to_fp32(load_u16(w + 2 * i)) * quant::bf16_to_fp32(load_u16(a + 2 * i));
  }
  return sum;
}

float dot_q4_0(const uint8_t* w, const uint8_t* a, int64_t n) {
  const auto* x = reinterpret_cast<const quant::BlockQ4_0*>(w);
  const auto* y = reinterpret_cast<const quant::BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / quant::QK; ++b) {
    int isum = 0;
    for (int j = 0; j < quant::QK / 2; ++j) {
      isum += ((x[b].qs[j] & 0x0F) - 8) * y[b].qs[j] + ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
    }
    sum += static_cast<float>(isum) * (quant::fp16_to_fp32(x[b].d) * quant::fp16_to_fp32(y[b].d));
  }
  return sum;
}

float dot_q8_0(const uint8_t* w, const uint8_t* a, int64_t n) {
  const auto* x = reinterpret_cast<const quant::BlockQ8_0*>(w);
  const auto* y = reinterpret_cast<const quant::BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / quant::QK; ++b) {
    int isum = 0;
    for (int j = 0; j < quant::QK; ++j) isum += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(isum) * (quant::fp16_to_fp32(x[b].d) * quant::fp16_to_fp32(y[b].d));
  }
  return sum;
}

// Q4_K and Q5_K: value = d*sc*q - dmin*mn per 32-element sub-block; the mins part uses the activation
// block sums, the rest is an exact integer sum per super-block.
template <bool kFifthBit>
float dot_k4_k5(const uint8_t* w, const uint8_t* a, int64_t n) {
  const size_t block_bytes = kFifthBit ? sizeof(quant::BlockQ5_K) : sizeof(quant::BlockQ4_K);
  const auto* y = reinterpret_cast<const quant::BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / quant::QK_K; ++b) {
    const uint8_t* blk = w + b * block_bytes;
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = kFifthBit ? blk + 48 : blk + 16;
    int sc[8], mn[8];
    unpack_k4_scales(blk + 4, sc, mn);
    int isum = 0, imin = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* q = qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      int sub = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 0x0F;
        if (kFifthBit && ((qh[l] >> j) & 1)) v += 16;
        sub += v * y[b].qs[32 * j + l];
      }
      isum += sc[j] * sub;
      imin += mn[j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    const float d = quant::fp16_to_fp32(load_u16(blk)) * y[b].d;
    const float dmin = quant::fp16_to_fp32(load_u16(blk + 2)) * y[b].d;
    sum += d * static_cast<float>(isum) - dmin * static_cast<float>(imin);
  }
  return sum;
}

float dot_q6_k(const uint8_t* w, const uint8_t* a, int64_t n) {
  const auto* x = reinterpret_cast<const quant::BlockQ6_K*>(w);
  const auto* y = reinterpret_cast<const quant::BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / quant::QK_K; ++b) {
    int isum = 0;
    for (int s = 0; s < quant::QK_K / 16; ++s) {
      int sub = 0;
      for (int i = 0; i < 16; ++i) {
        const int e = 16 * s + i;
        const int half = e / 128, g = (e % 128) / 32, l = e % 32;
        const uint8_t low_byte = x[b].ql[64 * half + (g & 1) * 32 + l];
        const int low4 = g < 2 ? (low_byte & 0x0F) : (low_byte >> 4);
        const int high2 = (x[b].qh[32 * half + l] >> (2 * g)) & 3;
        sub += ((low4 | (high2 << 4)) - 32) * y[b].qs[e];
      }
      isum += x[b].scales[s] * sub;
    }
    sum += quant::fp16_to_fp32(x[b].d) * y[b].d * static_cast<float>(isum);
  }
  return sum;
}

using DotFn = float (*)(const uint8_t*, const uint8_t*, int64_t);

template <DotFn kDot>
void rows_kernel(const WeightView& w, const PackedActs& a, int64_t r0, int64_t r1, float* y) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      y[t * w.rows + r] = kDot(base + r * w.row_bytes, a.rows + t * a.row_bytes, w.cols);
    }
  }
}

}  // namespace

RowsKernel rows_kernel_scalar(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return rows_kernel<dot_f32>;
    case GgmlType::F16: return rows_kernel<dot_f16>;
    case GgmlType::BF16: return rows_kernel<dot_bf16>;
    case GgmlType::Q4_0: return rows_kernel<dot_q4_0>;
    case GgmlType::Q8_0: return rows_kernel<dot_q8_0>;
    case GgmlType::Q4_K: return rows_kernel<dot_k4_k5<false>>;
    case GgmlType::Q5_K: return rows_kernel<dot_k4_k5<true>>;
    case GgmlType::Q6_K: return rows_kernel<dot_q6_k>;
    default: return nullptr;
  }
}

}  // namespace hcattn::cpu
