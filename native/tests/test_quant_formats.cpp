// Quant formats: the type table, fp16/bf16 conversions against an independent reference, and
// dequantization of hand-built blocks. Blocks are built the other way round from the reader: pick
// the logical values (codes, scales, mins), pack them into the byte layout of FORMATS.md §2, and
// expect the element formula of that section.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "quant/types.h"
#include "test_util.h"

using namespace hcattn::quant;

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Value of a finite half, computed from its definition in double precision.
double half_value(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 10) & 31;
  const int mant = h & 1023;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  return sign * std::ldexp(static_cast<double>(1024 + mant), exp - 25);
}

// Nearest half to a non-negative finite x, ties to the even code, from a sorted table of all
// non-negative finite halves (codes 0..0x7BFF are increasing in value).
uint16_t reference_to_half(double x, const std::vector<double>& table) {
  if (x >= 65520.0) return 0x7C00;  // at or past the midpoint between 65504 and 65536: inf
  const auto it = std::lower_bound(table.begin(), table.end(), x);
  const size_t hi = static_cast<size_t>(it - table.begin());
  if (hi == table.size()) return 0x7BFF;
  if (table[hi] == x || hi == 0) return static_cast<uint16_t>(hi);
  const size_t lo = hi - 1;
  const double dlo = x - table[lo], dhi = table[hi] - x;
  if (dlo < dhi) return static_cast<uint16_t>(lo);
  if (dhi < dlo) return static_cast<uint16_t>(hi);
  return static_cast<uint16_t>(lo % 2 == 0 ? lo : hi);
}

void test_fp16() {
  // Every half decodes to its defined value; specials keep their meaning.
  int decode_errors = 0, roundtrip_errors = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const int exp = (h >> 10) & 31;
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (exp == 31) {
      const bool ok = (h & 1023) == 0 ? std::isinf(f) && std::signbit(f) == ((h & 0x8000) != 0) : std::isnan(f);
      if (!ok) ++decode_errors;
      continue;
    }
    if (static_cast<double>(f) != half_value(static_cast<uint16_t>(h)) || std::signbit(f) != ((h & 0x8000) != 0)) {
      ++decode_errors;
    }
    if (fp32_to_fp16(f) != h) ++roundtrip_errors;  // exact values must encode back to themselves
  }
  CHECK(decode_errors == 0);
  CHECK(roundtrip_errors == 0);
  CHECK(fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(fp16_to_fp32(0xC000) == -2.0f);
  CHECK(fp16_to_fp32(0x7BFF) == 65504.0f);
  CHECK(fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(fp16_to_fp32(0x03FF) == 1023.0f * std::ldexp(1.0f, -24));
  CHECK(fp16_to_fp32(0x0400) == std::ldexp(1.0f, -14));
  CHECK(bits_of(fp16_to_fp32(0x8000)) == 0x80000000u);

  std::vector<double> table(0x7C00);
  for (uint32_t h = 0; h < 0x7C00; ++h) table[h] = half_value(static_cast<uint16_t>(h));

  // Rounding: every midpoint between neighbouring halves and one float step either side of it.
  int midpoint_errors = 0;
  for (uint32_t h = 0; h + 1 < 0x7C00; ++h) {
    const float mid = static_cast<float>((table[h] + table[h + 1]) / 2);  // exact: halves have 11 bits
    for (const float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      const uint16_t expect = reference_to_half(x, table);
      if (fp32_to_fp16(x) != expect) ++midpoint_errors;
      if (fp32_to_fp16(-x) != (expect | 0x8000)) ++midpoint_errors;
    }
  }
  CHECK(midpoint_errors == 0);

  // A spread of float bit patterns over the whole finite range.
  int sweep_errors = 0;
  for (uint64_t u = 0; u < 0x7F800000u; u += 977) {
    const float x = float_of(static_cast<uint32_t>(u));
    if (fp32_to_fp16(x) != reference_to_half(x, table)) ++sweep_errors;
  }
  CHECK(sweep_errors == 0);

  CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);      // tie -> even (1.0)
  CHECK(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie -> even (1 + 2^-9)
  CHECK(fp32_to_fp16(65504.0f) == 0x7BFF);
  CHECK(fp32_to_fp16(65519.996f) == 0x7BFF);
  CHECK(fp32_to_fp16(65520.0f) == 0x7C00);
  CHECK(fp32_to_fp16(1e10f) == 0x7C00);
  CHECK(fp32_to_fp16(-INFINITY) == 0xFC00);
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);                 // tie between 0 and 2^-24
  CHECK(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(fp32_to_fp16(3 * std::ldexp(1.0f, -25)) == 0x0002);             // tie between 1 and 2 ulps
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)) == 0x0400);  // rounds up to the smallest normal
  CHECK(fp32_to_fp16(1e-30f) == 0x0000);
  CHECK(fp32_to_fp16(-0.0f) == 0x8000);
  CHECK(fp32_to_fp16(NAN) == 0x7E00);
  CHECK(fp32_to_fp16(float_of(0xFF800001u)) == 0xFE00);  // signalling, negative NaN -> quiet NaN
}

void test_bf16() {
  CHECK(bf16_to_fp32(0x3F80) == 1.0f);
  CHECK(bits_of(bf16_to_fp32(0x4049)) == 0x40490000u);
  CHECK(fp32_to_bf16(1.0f) == 0x3F80);
  CHECK(fp32_to_bf16(float_of(0x3F808000u)) == 0x3F80);  // tie -> even
  CHECK(fp32_to_bf16(float_of(0x3F818000u)) == 0x3F82);  // tie -> even (up)
  CHECK(fp32_to_bf16(float_of(0x3F808001u)) == 0x3F81);  // just past the tie
  CHECK(fp32_to_bf16(float_of(0x3F807FFFu)) == 0x3F80);
  CHECK(fp32_to_bf16(float_of(0x7F7FFFFFu)) == 0x7F80);  // FLT_MAX rounds to inf
  CHECK(fp32_to_bf16(INFINITY) == 0x7F80);
  CHECK(fp32_to_bf16(float_of(0x7F800001u)) == 0x7FC0);  // NaN stays NaN (quiet)
  CHECK(fp32_to_bf16(float_of(0xFFC00000u)) == 0xFFC0);
  int roundtrip_errors = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool is_nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F) != 0;
    if (!is_nan && fp32_to_bf16(bf16_to_fp32(static_cast<uint16_t>(h))) != h) ++roundtrip_errors;
  }
  CHECK(roundtrip_errors == 0);
}

void test_type_table() {
  struct Row {
    int32_t id;
    const char* name;
    int blck;
    size_t bytes;
    bool supported;
  };
  const Row rows[] = {
      {0, "F32", 1, 4, true},       {1, "F16", 1, 2, true},        {2, "Q4_0", 32, 18, true},
      {3, "Q4_1", 32, 20, false},   {6, "Q5_0", 32, 22, false},    {7, "Q5_1", 32, 24, false},
      {8, "Q8_0", 32, 34, true},    {9, "Q8_1", 32, 36, false},    {10, "Q2_K", 256, 84, false},
      {11, "Q3_K", 256, 110, false}, {12, "Q4_K", 256, 144, true}, {13, "Q5_K", 256, 176, true},
      {14, "Q6_K", 256, 210, true}, {15, "Q8_K", 256, 292, false}, {16, "IQ2_XXS", 256, 66, false},
      {23, "IQ4_XS", 256, 136, false}, {28, "F64", 1, 8, false},   {29, "IQ1_M", 256, 56, false},
      {30, "BF16", 1, 2, true},     {34, "TQ1_0", 256, 54, false}, {35, "TQ2_0", 256, 66, false},
  };
  for (const Row& r : rows) {
    int blck = 0;
    size_t bytes = 0;
    CHECK(type_geometry(r.id, &blck, &bytes));
    CHECK(blck == r.blck && bytes == r.bytes);
    CHECK(std::string(type_name(static_cast<GgmlType>(r.id))) == r.name);
    CHECK(type_supported(static_cast<GgmlType>(r.id)) == r.supported);
  }
  for (const int32_t id : {-1, 4, 5, 31, 32, 33, 36, 37, 38, 40, 41, 1000}) {
    CHECK(!type_geometry(id, nullptr, nullptr));
  }
  CHECK(std::string(type_name(static_cast<GgmlType>(1000))) == "unknown");
  CHECK(row_size(GgmlType::Q4_K, 512) == 288);
  CHECK(row_size(GgmlType::Q8_0, 4096) == 128 * 34);
  CHECK(row_size(GgmlType::F16, 3) == 6);
  CHECK(row_size(GgmlType::Q6_K, 0) == 0);
  bool threw = false;
  try {
    row_size(GgmlType::Q4_K, 100);
  } catch (const hcattn::Error& e) {
    threw = std::string(e.what()).find("Q4_K block size 256") != std::string::npos;
  }
  CHECK(threw);
}

// Deterministic pseudo-random numbers for block contents.
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<uint32_t>(s >> 11);
  }
  int range(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint32_t>(hi - lo + 1)); }
};

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// A half scale with a non-trivial mantissa (so rounding order would show), possibly subnormal.
uint16_t random_half_scale(Rng& rng) { return static_cast<uint16_t>(rng.range(0x0100, 0x3FFF)); }

// Packs 32 codes 0..15 the legacy way: low nibbles are elements 0..15, high nibbles 16..31.
void pack_nibbles32(const int* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
}

std::vector<float> dequant(GgmlType t, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), -12345.0f);
  dequantize_row(t, bytes.data(), y.data(), n);
  return y;
}

int count_mismatches(const std::vector<float>& got, const std::vector<float>& want) {
  int bad = 0;
  for (size_t k = 0; k < want.size(); ++k) bad += bits_of(got[k]) != bits_of(want[k]);
  return bad;
}

constexpr int kBlocks = 6;  // blocks per test row, so the block stride is exercised too

void test_legacy_blocks() {
  Rng rng;
  {  // Q4_0
    std::vector<uint8_t> bytes(kBlocks * 18);
    std::vector<float> want;
    for (int b = 0; b < kBlocks; ++b) {
      uint8_t* blk = &bytes[b * 18];
      const uint16_t d = random_half_scale(rng);
      put_u16(blk, d);
      int q[32];
      for (int& v : q) v = rng.range(0, 15);
      pack_nibbles32(q, blk + 2);
      for (int j = 0; j < 32; ++j) want.push_back(static_cast<float>(q[j] - 8) * static_cast<float>(half_value(d)));
    }
    CHECK(count_mismatches(dequant(GgmlType::Q4_0, bytes, kBlocks * 32), want) == 0);
  }
  {  // Q4_1
    std::vector<uint8_t> bytes(kBlocks * 20);
    std::vector<float> want;
    for (int b = 0; b < kBlocks; ++b) {
      uint8_t* blk = &bytes[b * 20];
      const uint16_t d = random_half_scale(rng), m = static_cast<uint16_t>(random_half_scale(rng) | 0x8000);
      put_u16(blk, d);
      put_u16(blk + 2, m);
      int q[32];
      for (int& v : q) v = rng.range(0, 15);
      pack_nibbles32(q, blk + 4);
      for (int j = 0; j < 32; ++j) {
        want.push_back(static_cast<float>(q[j]) * static_cast<float>(half_value(d)) + static_cast<float>(half_value(m)));
      }
    }
    CHECK(count_mismatches(dequant(GgmlType::Q4_1, bytes, kBlocks * 32), want) == 0);
  }
  {  // Q5_0: fifth bit of element j is bit j of the u32 qh
    std::vector<uint8_t> bytes(kBlocks * 22);
    std::vector<float> want;
    for (int b = 0; b < kBlocks; ++b) {
      uint8_t* blk = &bytes[b * 22];
      const uint16_t d = random_half_scale(rng);
      put_u16(blk, d);
      int q[32];
      uint32_t qh = 0;
      for (int j = 0; j < 32; ++j) {
        q[j] = rng.range(0, 31);
        qh |= static_cast<uint32_t>(q[j] >> 4) << j;
      }
      for (int k = 0; k < 4; ++k) blk[2 + k] = static_cast<uint8_t>(qh >> (8 * k));
      pack_nibbles32(q, blk + 6);
      for (int j = 0; j < 32; ++j) want.push_back(static_cast<float>(q[j] - 16) * static_cast<float>(half_value(d)));
    }
    CHECK(count_mismatches(dequant(GgmlType::Q5_0, bytes, kBlocks * 32), want) == 0);
  }
  {  // Q8_0
    std::vector<uint8_t> bytes(kBlocks * 34);
    std::vector<float> want;
    for (int b = 0; b < kBlocks; ++b) {
      uint8_t* blk = &bytes[b * 34];
      const uint16_t d = random_half_scale(rng);
      put_u16(blk, d);
      for (int j = 0; j < 32; ++j) {
        const int q = rng.range(-128, 127);
        blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
        want.push_back(static_cast<float>(q) * static_cast<float>(half_value(d)));
      }
    }
    CHECK(count_mismatches(dequant(GgmlType::Q8_0, bytes, kBlocks * 32), want) == 0);
  }

  // Literal blocks, values worked out by hand.
  std::vector<uint8_t> q4(18, 0x88);
  put_u16(q4.data(), 0x3C00);  // d = 1
  q4[2] = 0x21;                // element 0 = 1 - 8, element 16 = 2 - 8
  q4[17] = 0xF0;               // element 15 = 0 - 8, element 31 = 15 - 8
  const std::vector<float> y4 = dequant(GgmlType::Q4_0, q4, 32);
  CHECK(y4[0] == -7.0f && y4[16] == -6.0f && y4[1] == 0.0f && y4[15] == -8.0f && y4[31] == 7.0f);
  std::vector<uint8_t> q8(34, 0);
  put_u16(q8.data(), 0x3800);  // d = 0.5
  q8[2] = 0x80;                // -128
  q8[33] = 0x7F;               // 127
  const std::vector<float> y8 = dequant(GgmlType::Q8_0, q8, 32);
  CHECK(y8[0] == -64.0f && y8[31] == 63.5f && y8[5] == 0.0f);
}

// Packs the eight 6-bit scales and mins of a Q4_K/Q5_K super-block into 12 bytes: bytes 0-3 hold
// sc0..3 in their low 6 bits and the top bits of sc4..7 in their top 2; bytes 4-7 the same for the
// mins; bytes 8-11 the low 4 bits of sc4..7 (low nibble) and mn4..7 (high nibble).
void pack_k4_scales(const int* sc, const int* mn, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

// Q4_K (with_high_bit false) or Q5_K (true): element e's low 4 bits live in qs[32*(e/64) + e%32],
// low nibble when (e/32) is even; Q5_K's fifth bit is bit (e/32) of qh[e%32].
void test_k4_k5(bool with_high_bit) {
  const GgmlType type = with_high_bit ? GgmlType::Q5_K : GgmlType::Q4_K;
  const size_t block_bytes = with_high_bit ? 176 : 144;
  const size_t qs_at = with_high_bit ? 48 : 16;
  Rng rng;
  std::vector<uint8_t> bytes(kBlocks * block_bytes, 0);
  std::vector<float> want;
  for (int b = 0; b < kBlocks; ++b) {
    uint8_t* blk = &bytes[b * block_bytes];
    const uint16_t d = random_half_scale(rng), dmin = random_half_scale(rng);
    put_u16(blk, d);
    put_u16(blk + 2, dmin);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = rng.range(0, 63);
      mn[j] = rng.range(0, 63);
    }
    pack_k4_scales(sc, mn, blk + 4);
    for (int e = 0; e < 256; ++e) {
      const int q = rng.range(0, with_high_bit ? 31 : 15);
      uint8_t& byte = blk[qs_at + 32 * (e / 64) + e % 32];
      byte |= static_cast<uint8_t>(((e / 32) % 2 == 0) ? (q & 15) : ((q & 15) << 4));
      if (with_high_bit) blk[16 + e % 32] |= static_cast<uint8_t>((q >> 4) << (e / 32));
      const float d1 = static_cast<float>(half_value(d)) * static_cast<float>(sc[e / 32]);
      const float m1 = static_cast<float>(half_value(dmin)) * static_cast<float>(mn[e / 32]);
      want.push_back(d1 * static_cast<float>(q) - m1);
    }
  }
  CHECK(count_mismatches(dequant(type, bytes, kBlocks * 256), want) == 0);
}

void test_q4_k_literal() {
  std::vector<uint8_t> blk(144, 0);
  put_u16(&blk[0], 0x3C00);  // d = 1
  put_u16(&blk[2], 0x3800);  // dmin = 0.5
  // sc[0] = 1, mn[0] = 2; sc[4] = 37 = 0b10'0101, mn[4] = 19 = 0b01'0011.
  blk[4 + 0] = 0x01 | (2 << 6);
  blk[4 + 4] = 0x02 | (1 << 6);
  blk[4 + 8] = 0x05 | (0x3 << 4);
  blk[16 + 0] = 0x37;   // element 0: q = 7 (sub-block 0); element 32: q = 3 (sub-block 1, scale 0)
  blk[16 + 64] = 0x0A;  // element 128: q = 10 (sub-block 4)
  const std::vector<float> y = dequant(GgmlType::Q4_K, blk, 256);
  CHECK(y[0] == 6.0f);      // 1*1*7 - 0.5*2
  CHECK(y[1] == -1.0f);     // q = 0: -0.5*2
  CHECK(y[32] == 0.0f);     // scale and min of sub-block 1 are 0
  CHECK(y[128] == 360.5f);  // 37*10 - 0.5*19
  CHECK(y[129] == -9.5f);
}

// Q6_K: element e, n = e/128, g = (e%128)/32, l = e%32. Low 4 bits in ql[64n + 32*(g%2) + l] (low
// nibble for g < 2), high 2 bits at bits 2g..2g+1 of qh[32n + l]; q = 6-bit value - 32; scale e/16.
void test_q6_k() {
  Rng rng;
  std::vector<uint8_t> bytes(kBlocks * 210, 0);
  std::vector<float> want;
  for (int b = 0; b < kBlocks; ++b) {
    uint8_t* blk = &bytes[b * 210];
    const uint16_t d = random_half_scale(rng);
    put_u16(blk + 208, d);
    int sc[16];
    for (int k = 0; k < 16; ++k) {
      sc[k] = rng.range(-128, 127);
      blk[192 + k] = static_cast<uint8_t>(static_cast<int8_t>(sc[k]));
    }
    for (int e = 0; e < 256; ++e) {
      const int q = rng.range(-32, 31);
      const int u = q + 32;
      const int n = e / 128, g = (e % 128) / 32, l = e % 32;
      blk[64 * n + 32 * (g % 2) + l] |= static_cast<uint8_t>(g < 2 ? (u & 15) : ((u & 15) << 4));
      blk[128 + 32 * n + l] |= static_cast<uint8_t>((u >> 4) << (2 * g));
      want.push_back(static_cast<float>(half_value(d)) * static_cast<float>(sc[e / 16]) * static_cast<float>(q));
    }
  }
  CHECK(count_mismatches(dequant(GgmlType::Q6_K, bytes, kBlocks * 256), want) == 0);

  std::vector<uint8_t> blk(210, 0);
  put_u16(&blk[208], 0x3C00);  // d = 1
  blk[192 + 0] = static_cast<uint8_t>(-2);  // scale of elements 0..15
  blk[192 + 2] = 1;                         // elements 32..47
  blk[192 + 4] = 3;                         // elements 64..79
  blk[0] = 0x05;    // element 0 low bits 5; element 64 low bits 0
  blk[128] = 0x02;  // element 0 high bits 2 -> 37 - 32 = 5; elements 32 and 64 high bits 0
  blk[32] = 0x0F;   // element 32 low bits 15 -> 15 - 32 = -17
  const std::vector<float> y = dequant(GgmlType::Q6_K, blk, 256);
  CHECK(y[0] == -10.0f && y[32] == -17.0f && y[64] == -96.0f);
}

void test_float_rows() {
  const std::vector<float> src = {1.5f, -0.0f, 3e-8f, 65504.0f, -1e30f};
  std::vector<uint8_t> f32(src.size() * 4);
  std::memcpy(f32.data(), src.data(), f32.size());
  CHECK(count_mismatches(dequant(GgmlType::F32, f32, 5), src) == 0);
  std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C};  // 1, -2, 2^-24, inf
  const std::vector<float> y16 = dequant(GgmlType::F16, f16, 4);
  CHECK(y16[0] == 1.0f && y16[1] == -2.0f && y16[2] == std::ldexp(1.0f, -24) && std::isinf(y16[3]));
  std::vector<uint8_t> bf = {0x80, 0x3F, 0x49, 0x40};  // 1, 3.140625
  const std::vector<float> ybf = dequant(GgmlType::BF16, bf, 2);
  CHECK(ybf[0] == 1.0f && ybf[1] == 3.140625f);
}

void test_dequant_errors() {
  std::vector<uint8_t> buf(1024, 0);
  std::vector<float> out(512);
  std::string msg;
  try {
    dequantize_row(GgmlType::Q2_K, buf.data(), out.data(), 256);
  } catch (const hcattn::Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("Q2_K") != std::string::npos);
  msg.clear();
  try {
    dequantize_row(GgmlType::Q8_0, buf.data(), out.data(), 33);
  } catch (const hcattn::Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("not a multiple of the Q8_0 block size 32") != std::string::npos);
}

}  // namespace

int main() {
  test_fp16();
  test_bf16();
  test_type_table();
  test_legacy_blocks();
  test_k4_k5(false);
  test_k4_k5(true);
  test_q4_k_literal();
  test_q6_k();
  test_float_rows();
  test_dequant_errors();
  return test_summary("test_quant_formats");
}
