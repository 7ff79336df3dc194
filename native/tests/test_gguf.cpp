// GGUF reader: a valid file with metadata of every type, arrays and tensors parses to exactly what was
// written; every malformed variant (truncation at any offset, bad magic/version, absurd counts and
// dims, bad offsets, unknown types, duplicates) is rejected with an error that names the field.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "quant/types.h"
#include "test_util.h"

using hcattn::gguf::ByteWriter;
using hcattn::gguf::File;
using hcattn::gguf::Image;
using hcattn::gguf::ValueType;
using hcattn::gguf::Writer;
using hcattn::quant::GgmlType;

namespace {

// The id a file stores for `type`, for raw payloads and for overwriting fields in place.
int32_t id(ValueType type) { return static_cast<int32_t>(type); }

template <typename T>
void patch(std::vector<uint8_t>& bytes, size_t pos, T value) {
  std::memcpy(bytes.data() + pos, &value, sizeof(T));
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> filled(size_t n, uint8_t start) {
  std::vector<uint8_t> out(n);
  for (size_t k = 0; k < n; ++k) out[k] = static_cast<uint8_t>(start + k);
  return out;
}

// The reference file: metadata of every value type, arrays of several element types, and tensors of
// several types and ranks.
Writer reference_builder() {
  Writer b;
  b.kv_string("general.architecture", "llama");
  b.kv_scalar<uint8_t>("t.u8", ValueType::U8, 200);
  b.kv_scalar<int8_t>("t.i8", ValueType::I8, -100);
  b.kv_scalar<uint16_t>("t.u16", ValueType::U16, 60000);
  b.kv_scalar<int16_t>("t.i16", ValueType::I16, -30000);
  b.kv_scalar<uint32_t>("t.u32", ValueType::U32, 4000000000u);
  b.kv_scalar<int32_t>("t.i32", ValueType::I32, -2000000000);
  b.kv_scalar<float>("t.f32", ValueType::F32, 1e-5f);
  b.kv_scalar<uint8_t>("t.bool", ValueType::BOOL, 1);
  b.kv_scalar<uint64_t>("t.u64", ValueType::U64, 18000000000000000000ull);
  b.kv_scalar<int64_t>("t.i64", ValueType::I64, -9000000000000000000ll);
  b.kv_scalar<double>("t.f64", ValueType::F64, 500000.25);
  b.kv_string("t.empty_string", "");
  b.kv_string("t.utf8", "h\xC3\xA9llo \xE2\x9C\x93");
  b.kv_string_array("tokenizer.ggml.tokens", {"<s>", "", "\xC4\xA0the", "a b"});
  b.kv_array<int32_t>("tokenizer.ggml.token_type", ValueType::I32, {1, 3, -1, 6});
  b.kv_array<float>("tokenizer.ggml.scores", ValueType::F32, {0.5f, -1.25f});
  b.kv_array<uint8_t>("t.bools", ValueType::BOOL, {0, 1, 7});
  b.kv_array<uint64_t>("t.u64s", ValueType::U64, {0, 42});
  b.kv_array<double>("t.f64s", ValueType::F64, {});
  b.tensor("token_embd.weight", 0 /*F32*/, {4, 3}, f32_bytes({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  b.tensor("output_norm.weight", 1 /*F16*/, {8}, filled(16, 1));
  b.tensor("blk.0.attn_q.weight", 8 /*Q8_0*/, {64, 2}, filled(4 * 34, 3));
  b.tensor("blk.0.ffn_down.weight", 12 /*Q4_K*/, {256, 1, 2}, filled(2 * 144, 5));
  b.tensor("t.4d", 30 /*BF16*/, {2, 1, 1, 3}, filled(12, 7));
  return b;
}

// Parses bytes from an exactly-sized heap copy, so that a sanitizer build would catch any read past
// the end; returns the error message ("" when it parsed).
std::string parse_error(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() == 0 ? 1 : bytes.size()]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  try {
    File::parse(copy.get(), bytes.size(), "test.gguf");
  } catch (const hcattn::Error& e) {
    return e.what();
  }
  return "";
}

// The file must be rejected with a message containing every one of the given fragments.
#define EXPECT_REJECTED(bytes, ...)                                                                   \
  do {                                                                                                \
    const std::string msg_ = parse_error(bytes);                                                      \
    CHECK(!msg_.empty());                                                                             \
    for (const std::string& frag_ : std::initializer_list<std::string>{__VA_ARGS__}) {                 \
      const bool has_ = msg_.find(frag_) != std::string::npos;                                        \
      CHECK(has_);                                                                                    \
      if (!has_) std::fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", msg_.c_str(), frag_.c_str()); \
    }                                                                                                 \
  } while (0)

void test_reference_file() {
  const Image built = reference_builder().build();
  const std::vector<uint8_t>& bytes = built.bytes;
  std::unique_ptr<File> f = File::parse(bytes.data(), bytes.size(), "ref.gguf");
  CHECK(f->version() == 3);
  CHECK(f->size() == bytes.size());
  CHECK(f->metadata().size() == 20);

  CHECK(f->get_string("general.architecture") == "llama");
  CHECK(f->find("t.u8")->type == ValueType::U8 && f->find("t.u8")->u == 200);
  CHECK(f->find("t.i8")->type == ValueType::I8 && f->find("t.i8")->i == -100);
  CHECK(f->find("t.u16")->u == 60000);
  CHECK(f->find("t.i16")->i == -30000);
  CHECK(f->find("t.u32")->type == ValueType::U32 && f->find("t.u32")->u == 4000000000u);
  CHECK(f->find("t.i32")->i == -2000000000);
  CHECK(f->find("t.f32")->f == static_cast<double>(1e-5f));
  CHECK(f->get_bool("t.bool"));
  CHECK(f->find("t.u64")->u == 18000000000000000000ull);
  CHECK(f->find("t.i64")->i == -9000000000000000000ll);
  CHECK(f->find("t.f64")->f == 500000.25);
  CHECK(f->get_string("t.empty_string").empty());
  CHECK(f->get_string("t.utf8") == "h\xC3\xA9llo \xE2\x9C\x93");

  // Typed getters widen integers and accept integers as floats.
  CHECK(f->get_uint("t.u8") == 200);
  CHECK(f->get_uint("t.u64") == 18000000000000000000ull);
  CHECK(f->get_uint("t.u32") == 4000000000u);
  CHECK(f->get_float("t.f32") == static_cast<double>(1e-5f));
  CHECK(f->get_float("t.i32") == -2000000000.0);
  CHECK(f->get_uint_or("absent.key", 77) == 77);
  CHECK(f->get_uint_or("t.u16", 77) == 60000);
  CHECK(f->get_float_or("absent.key", 2.5) == 2.5);
  CHECK(f->get_float_or("t.f64", 2.5) == 500000.25);
  CHECK(f->get_string_or("absent.key", "dflt") == "dflt");
  CHECK(f->get_string_or("general.architecture", "dflt") == "llama");
  CHECK(f->find("absent.key") == nullptr);

  const hcattn::gguf::Value* tokens = f->find("tokenizer.ggml.tokens");
  CHECK(tokens && tokens->type == ValueType::ARRAY && tokens->elem_type == ValueType::STRING);
  CHECK(tokens->strs.size() == 4 && tokens->strs[0] == "<s>" && tokens->strs[1].empty() &&
        tokens->strs[2] == "\xC4\xA0the" && tokens->strs[3] == "a b");
  const hcattn::gguf::Value* types = f->find("tokenizer.ggml.token_type");
  CHECK(types->elem_type == ValueType::I32 && types->ints.size() == 4 && types->ints[0] == 1 &&
        types->ints[2] == -1 && types->nums[3] == 6.0);
  const hcattn::gguf::Value* scores = f->find("tokenizer.ggml.scores");
  CHECK(scores->elem_type == ValueType::F32 && scores->nums.size() == 2 && scores->nums[0] == 0.5 &&
        scores->nums[1] == -1.25);
  const hcattn::gguf::Value* bools = f->find("t.bools");
  CHECK(bools->elem_type == ValueType::BOOL && bools->ints.size() == 3 && bools->ints[0] == 0 &&
        bools->ints[1] == 1 && bools->ints[2] == 1);
  CHECK(f->find("t.u64s")->ints.size() == 2 && f->find("t.u64s")->ints[1] == 42);
  CHECK(f->find("t.f64s")->elem_type == ValueType::F64 && f->find("t.f64s")->nums.empty());

  CHECK(f->tensors().size() == 5);
  const hcattn::gguf::TensorInfo& emb = f->tensor("token_embd.weight");
  CHECK(emb.type == GgmlType::F32 && emb.n_dims == 2 && emb.ne[0] == 4 && emb.ne[1] == 3 && emb.ne[2] == 1 &&
        emb.ne[3] == 1);
  CHECK(emb.rows() == 3 && emb.row_bytes() == 16 && emb.nbytes == 48 && emb.offset == 0);
  CHECK(emb.data == bytes.data() + built.data_start);
  float row2[4];
  hcattn::quant::dequantize_row(emb.type, emb.data + 2 * emb.row_bytes(), row2, 4);
  CHECK(row2[0] == 8.0f && row2[3] == 11.0f);

  const hcattn::gguf::TensorInfo& norm = f->tensor("output_norm.weight");
  CHECK(norm.type == GgmlType::F16 && norm.n_dims == 1 && norm.nbytes == 16 && norm.offset == 64);
  CHECK(norm.data[0] == 1 && norm.data[15] == 16);

  const hcattn::gguf::TensorInfo& q = f->tensor("blk.0.attn_q.weight");
  CHECK(q.type == GgmlType::Q8_0 && q.row_bytes() == 68 && q.rows() == 2 && q.nbytes == 136 && q.offset == 96);
  CHECK(q.data == bytes.data() + built.data_start + 96 && q.data[0] == 3);

  const hcattn::gguf::TensorInfo& down = f->tensor("blk.0.ffn_down.weight");
  CHECK(down.type == GgmlType::Q4_K && down.n_dims == 3 && down.ne[2] == 2 && down.rows() == 2 &&
        down.nbytes == 288 && down.offset == 256);

  const hcattn::gguf::TensorInfo& t4 = f->tensor("t.4d");
  CHECK(t4.type == GgmlType::BF16 && t4.n_dims == 4 && t4.ne[3] == 3 && t4.rows() == 3 && t4.nbytes == 12);
  CHECK(t4.data + t4.nbytes == bytes.data() + bytes.size());

  CHECK(f->find_tensor("absent.weight") == nullptr);
  CHECK(&f->tensors()[2] == f->find_tensor("blk.0.attn_q.weight"));
}

void test_getter_errors() {
  const Image built = reference_builder().build();
  std::unique_ptr<File> f = File::parse(built.bytes.data(), built.bytes.size(), "ref.gguf");
  const auto error_of = [&](auto fn) -> std::string {
    try {
      fn();
    } catch (const hcattn::Error& e) {
      return e.what();
    }
    return "";
  };
  std::string m = error_of([&] { f->get_uint("llama.block_count"); });
  CHECK(m.find("missing metadata key 'llama.block_count'") != std::string::npos);
  m = error_of([&] { f->get_uint("t.i8"); });
  CHECK(m.find("'t.i8'") != std::string::npos && m.find("negative") != std::string::npos);
  m = error_of([&] { f->get_uint("general.architecture"); });
  CHECK(m.find("'general.architecture' should be an integer but is string") != std::string::npos);
  m = error_of([&] { f->get_string("t.u8"); });
  CHECK(m.find("'t.u8' should be a string but is u8") != std::string::npos);
  m = error_of([&] { f->get_bool("t.u8"); });
  CHECK(m.find("'t.u8' should be a bool") != std::string::npos);
  m = error_of([&] { f->get_float("tokenizer.ggml.scores"); });
  CHECK(m.find("should be a number but is array") != std::string::npos);
  m = error_of([&] { f->get_uint_or("general.architecture", 1); });
  CHECK(m.find("should be an integer") != std::string::npos);
  m = error_of([&] { f->tensor("output.weight"); });
  CHECK(m.find("missing tensor 'output.weight'") != std::string::npos);
}

void test_version_2_and_alignment() {
  Writer b = reference_builder();
  b.version = 2;
  b.alignment = 64;
  b.kv_scalar<uint32_t>("general.alignment", ValueType::U32, 64);
  const Image built = b.build();
  std::unique_ptr<File> f = File::parse(built.bytes.data(), built.bytes.size());
  CHECK(f->version() == 2);
  CHECK(built.data_start % 64 == 0);
  CHECK(f->tensor("output_norm.weight").offset == 64);
  CHECK(f->tensor("blk.0.attn_q.weight").offset == 128);
  CHECK(f->tensor("blk.0.attn_q.weight").data == built.bytes.data() + built.data_start + 128);

  // A file with no tensors needs no data section.
  Writer empty;
  empty.kv_string("general.architecture", "llama");
  const Image e = empty.build();
  std::unique_ptr<File> ef = File::parse(e.bytes.data(), e.bytes.size());
  CHECK(ef->tensors().empty() && ef->metadata().size() == 1);
}

void test_every_truncation_fails() {
  const std::vector<uint8_t> bytes = reference_builder().build().bytes;
  int rejected = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    if (!parse_error(prefix).empty()) ++rejected;
  }
  CHECK(rejected == static_cast<int>(bytes.size()));
  EXPECT_REJECTED(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 2), "magic", "at byte 0", "truncated");
  const Image built = reference_builder().build();
  const size_t cut = built.tensor_info_pos[2] + 3;
  EXPECT_REJECTED(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)),
                  "tensor info #2 name length", "at byte " + std::to_string(built.tensor_info_pos[2]), "truncated");
  EXPECT_REJECTED(std::vector<uint8_t>(bytes.end() - 20, bytes.end()), "magic");
  EXPECT_REJECTED(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), "tensor 't.4d' offset", "run past end of file");
}

void test_header_errors() {
  const Image ok = reference_builder().build();
  std::vector<uint8_t> b = ok.bytes;
  b[0] = 'g';
  EXPECT_REJECTED(b, "magic", "at byte 0", "not a GGUF file");

  b = ok.bytes;
  patch<uint32_t>(b, 4, 1);
  EXPECT_REJECTED(b, "version", "at byte 4", "version 1 is no longer supported");
  patch<uint32_t>(b, 4, 4);
  EXPECT_REJECTED(b, "version", "unsupported GGUF version 4");
  patch<uint32_t>(b, 4, 0);
  EXPECT_REJECTED(b, "version", "unsupported GGUF version 0");

  b = ok.bytes;
  patch<uint64_t>(b, ok.n_kv_pos, 1ull << 60);
  EXPECT_REJECTED(b, "n_kv", "at byte 16", "cannot fit");
  patch<uint64_t>(b, ok.n_kv_pos, ~0ull);
  EXPECT_REJECTED(b, "n_kv", "cannot fit");
  b = ok.bytes;
  patch<uint64_t>(b, ok.n_tensors_pos, 1ull << 40);
  EXPECT_REJECTED(b, "n_tensors", "at byte 8", "cannot fit");
  patch<uint64_t>(b, ok.n_tensors_pos, ~0ull);
  EXPECT_REJECTED(b, "n_tensors", "cannot fit");

  // More pairs than written (but few enough to pass the size bound): the reader runs into the tensor
  // infos and must fail cleanly on whatever it finds there.
  b = ok.bytes;
  patch<uint64_t>(b, ok.n_kv_pos, 21);
  CHECK(!parse_error(b).empty());
}

void test_metadata_errors() {
  const Image ok = reference_builder().build();
  const size_t kv0 = ok.kv_pos[0];
  std::vector<uint8_t> b = ok.bytes;
  patch<uint64_t>(b, kv0, 1ull << 62);  // key length
  EXPECT_REJECTED(b, "metadata key #0", "exceeds the limit of 65535");
  patch<uint64_t>(b, kv0, 60000);  // within the key limit but past the end of the file
  EXPECT_REJECTED(b, "metadata key #0", "truncated");
  patch<uint64_t>(b, kv0, 0);
  EXPECT_REJECTED(b, "metadata key #0", "empty key");

  // The value of general.architecture is a string right after key and type.
  b = ok.bytes;
  const size_t arch_value = kv0 + 8 + std::strlen("general.architecture") + 4;
  patch<uint64_t>(b, arch_value, ~0ull);
  EXPECT_REJECTED(b, "metadata 'general.architecture'", "truncated");
  patch<int32_t>(b, arch_value - 4, 13);
  EXPECT_REJECTED(b, "metadata 'general.architecture' value type", "unknown value type 13");
  patch<int32_t>(b, arch_value - 4, -1);
  EXPECT_REJECTED(b, "value type", "unknown value type -1");

  Writer g;
  g.kv_string("general.architecture", "llama");
  g.kv_string("general.architecture", "llama");
  EXPECT_REJECTED(g.build().bytes, "metadata 'general.architecture'", "duplicate key");

  const std::string long_key(65536, 'k');
  Writer lk;
  lk.kv_scalar<uint8_t>(long_key, ValueType::U8, 1);
  EXPECT_REJECTED(lk.build().bytes, "metadata key #0", "65536 exceeds the limit of 65535");
  Writer max_key;
  max_key.kv_scalar<uint8_t>(std::string(65535, 'k'), ValueType::U8, 1);
  CHECK(parse_error(max_key.build().bytes).empty());

  // Arrays: element type, nesting and counts.
  const auto array_file = [](int32_t elem_type, uint64_t count, const std::vector<uint8_t>& payload) {
    Writer a;
    ByteWriter w;
    w.put<int32_t>(elem_type);
    w.put<uint64_t>(count);
    w.put_bytes(payload);
    a.kv_raw("t.arr", id(ValueType::ARRAY), w.bytes);
    return a.build().bytes;
  };
  EXPECT_REJECTED(array_file(id(ValueType::ARRAY), 1, std::vector<uint8_t>(64, 0)), "metadata 't.arr' element type",
                  "arrays of arrays");
  EXPECT_REJECTED(array_file(99, 1, std::vector<uint8_t>(64, 0)), "metadata 't.arr' element type",
                  "unknown value type 99");
  EXPECT_REJECTED(array_file(id(ValueType::U8), 1ull << 50, std::vector<uint8_t>(64, 0)), "metadata 't.arr' count",
                  "cannot fit");
  EXPECT_REJECTED(array_file(id(ValueType::U32), 17, std::vector<uint8_t>(64, 0)), "metadata 't.arr' count", "cannot fit");
  CHECK(parse_error(array_file(id(ValueType::U32), 16, std::vector<uint8_t>(64, 0))).empty());
  EXPECT_REJECTED(array_file(id(ValueType::STRING), 9, std::vector<uint8_t>(64, 0)), "metadata 't.arr' count", "cannot fit");
  // Eight empty strings fit exactly.
  CHECK(parse_error(array_file(id(ValueType::STRING), 8, std::vector<uint8_t>(64, 0))).empty());
  // A string element whose length runs past the end.
  std::vector<uint8_t> bad_string(16, 0);
  patch<uint64_t>(bad_string, 0, 1000);
  EXPECT_REJECTED(array_file(id(ValueType::STRING), 2, bad_string), "metadata 't.arr'[0]", "truncated");

  // general.alignment must be a u32 power of two.
  Writer a64;
  a64.kv_scalar<uint64_t>("general.alignment", ValueType::U64, 32);
  EXPECT_REJECTED(a64.build().bytes, "metadata 'general.alignment' value type", "must be u32, found u64");
  Writer a48;
  a48.kv_scalar<uint32_t>("general.alignment", ValueType::U32, 48);
  EXPECT_REJECTED(a48.build().bytes, "metadata 'general.alignment' at byte 53", "48 is not a power of two");
  Writer a0;
  a0.kv_scalar<uint32_t>("general.alignment", ValueType::U32, 0);
  EXPECT_REJECTED(a0.build().bytes, "metadata 'general.alignment'", "0 is not a power of two");
}

Image one_tensor(int32_t type, const std::vector<int64_t>& ne, size_t nbytes) {
  Writer b;
  b.kv_string("general.architecture", "llama");
  b.tensor("w", type, ne, std::vector<uint8_t>(nbytes, 0));
  return b.build();
}

void test_tensor_errors() {
  const Image ok = reference_builder().build();
  std::vector<uint8_t> b = ok.bytes;

  patch<uint32_t>(b, ok.tensor_ndims_pos[1], 0);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' n_dims", "0 is not in 1..4");
  patch<uint32_t>(b, ok.tensor_ndims_pos[1], 5);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' n_dims", "at byte " + std::to_string(ok.tensor_ndims_pos[1]),
                  "5 is not in 1..4");

  b = ok.bytes;
  patch<int64_t>(b, ok.tensor_ndims_pos[0] + 4 + 8, -3);  // ne[1] of token_embd.weight
  EXPECT_REJECTED(b, "tensor 'token_embd.weight' ne[1]", "negative dimension -3");

  b = ok.bytes;
  patch<int32_t>(b, ok.tensor_type_pos[0], 100);
  EXPECT_REJECTED(b, "tensor 'token_embd.weight' type", "unknown tensor type id 100");
  patch<int32_t>(b, ok.tensor_type_pos[0], 4);  // Q4_2: removed from ggml long ago
  EXPECT_REJECTED(b, "tensor 'token_embd.weight' type", "unknown tensor type id 4");
  patch<int32_t>(b, ok.tensor_type_pos[0], 31);  // a run-time repack layout, never stored
  EXPECT_REJECTED(b, "unknown tensor type id 31");
  patch<int32_t>(b, ok.tensor_type_pos[0], -1);
  EXPECT_REJECTED(b, "unknown tensor type id -1");

  // ne[0] must be a whole number of blocks.
  EXPECT_REJECTED(one_tensor(8, {33, 1}, 64).bytes, "tensor 'w' ne[0]", "33 is not a multiple of the Q8_0 block size 32");
  EXPECT_REJECTED(one_tensor(14, {128}, 210).bytes, "tensor 'w' ne[0]", "not a multiple of the Q6_K block size 256");

  // Element counts and byte sizes that overflow.
  EXPECT_REJECTED(one_tensor(0, {1ll << 40, 1ll << 40}, 4).bytes, "tensor 'w' ne[1]", "overflows");
  EXPECT_REJECTED(one_tensor(0, {1ll << 62}, 4).bytes, "tensor 'w'", "data size overflows");
  EXPECT_REJECTED(one_tensor(0, {std::numeric_limits<int64_t>::max(), 2}, 4).bytes, "tensor 'w' ne[1]", "overflows");
  EXPECT_REJECTED(one_tensor(0, {1ll << 40}, 4).bytes, "tensor 'w' offset", "run past end of file");
  // A zero dimension is legal and makes an empty tensor.
  const Image empty_tensor = one_tensor(0, {0, 5}, 0);
  std::unique_ptr<File> ef = File::parse(empty_tensor.bytes.data(), empty_tensor.bytes.size());
  CHECK(ef->tensor("w").nbytes == 0 && ef->tensor("w").rows() == 5);

  // Offsets: misaligned, past the end, and so large that offset + size wraps around.
  b = ok.bytes;
  patch<uint64_t>(b, ok.tensor_offset_pos[1], 65);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' offset", "at byte " + std::to_string(ok.tensor_offset_pos[1]),
                  "65 is not a multiple of the alignment 32");
  patch<uint64_t>(b, ok.tensor_offset_pos[1], 1 << 20);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' offset", "run past end of file (size " + std::to_string(b.size()) + ")");
  patch<uint64_t>(b, ok.tensor_offset_pos[1], ~0ull - 31);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' offset", "run past end of file");
  patch<uint64_t>(b, ok.tensor_offset_pos[1], b.size() - ok.data_start + 32 - (b.size() - ok.data_start) % 32);
  EXPECT_REJECTED(b, "tensor 'output_norm.weight' offset", "run past end of file");

  // Names: duplicate, empty, too long.
  Writer dup;
  dup.tensor("w", 0, {1}, {0, 0, 0, 0});
  dup.tensor("w", 0, {1}, {0, 0, 0, 0});
  EXPECT_REJECTED(dup.build().bytes, "tensor 'w'", "duplicate tensor name");
  Writer unnamed;
  unnamed.tensor("", 0, {1}, {0, 0, 0, 0});
  EXPECT_REJECTED(unnamed.build().bytes, "tensor info #0 name", "empty tensor name");
  Writer long_name;
  long_name.tensor(std::string(64, 'n'), 0, {1}, {0, 0, 0, 0});
  EXPECT_REJECTED(long_name.build().bytes, "tensor info #0 name", "64 exceeds the limit of 63");
  Writer max_name;
  max_name.tensor(std::string(63, 'n'), 0, {1}, {0, 0, 0, 0});
  CHECK(parse_error(max_name.build().bytes).empty());
}

void test_unsupported_types_load_but_are_refused() {
  // IQ2_XXS (16) and Q2_K (10) have known geometry, so the file loads and sizes are checked...
  Writer b;
  b.tensor("blk.0.ffn_up.weight", 16, {256, 2}, std::vector<uint8_t>(2 * 66, 0));
  b.tensor("blk.0.ffn_gate.weight", 10, {512}, std::vector<uint8_t>(2 * 84, 0));
  b.tensor("blk.0.attn_norm.weight", 0, {4}, std::vector<uint8_t>(16, 0));
  const Image built = b.build();
  std::unique_ptr<File> f = File::parse(built.bytes.data(), built.bytes.size());
  CHECK(f->tensor("blk.0.ffn_up.weight").nbytes == 132);
  CHECK(f->tensor("blk.0.ffn_gate.weight").nbytes == 168);
  // ...but the model loader's check names the tensor and the type.
  std::string msg;
  try {
    f->tensor("blk.0.ffn_up.weight").require_supported();
  } catch (const hcattn::Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("tensor 'blk.0.ffn_up.weight' has type IQ2_XXS") != std::string::npos);
  msg.clear();
  try {
    f->tensor("blk.0.ffn_gate.weight").require_supported();
  } catch (const hcattn::Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("tensor 'blk.0.ffn_gate.weight' has type Q2_K") != std::string::npos);
  bool threw = false;
  try {
    f->tensor("blk.0.attn_norm.weight").require_supported();
  } catch (const hcattn::Error&) {
    threw = true;
  }
  CHECK(!threw);
}

void test_open_from_disk() {
  char dir_template[] = "/tmp/hcattn_gguf_XXXXXX";
  const char* dir = mkdtemp(dir_template);
  CHECK(dir != nullptr);
  if (!dir) return;
  const std::string path = std::string(dir) + "/ref.gguf";
  const Image built = reference_builder().build();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(built.bytes.data()), static_cast<std::streamsize>(built.bytes.size()));
  }
  {
    std::unique_ptr<File> f = File::open(path);
    CHECK(f->path() == path && f->size() == built.bytes.size());
    CHECK(f->get_string("general.architecture") == "llama");
    float row[4];
    const hcattn::gguf::TensorInfo& emb = f->tensor("token_embd.weight");
    hcattn::quant::dequantize_row(emb.type, emb.data + emb.row_bytes(), row, 4);
    CHECK(row[0] == 4.0f && row[3] == 7.0f);
  }
  const auto open_error = [](const std::string& p) -> std::string {
    try {
      File::open(p);
    } catch (const hcattn::Error& e) {
      return e.what();
    }
    return "";
  };
  std::string m = open_error(std::string(dir) + "/missing.gguf");
  CHECK(m.find("cannot open model file") != std::string::npos && m.find("missing.gguf") != std::string::npos);
  m = open_error(dir);
  CHECK(m.find("is not a regular file") != std::string::npos);
  const std::string empty_path = std::string(dir) + "/empty.gguf";
  std::ofstream(empty_path).close();
  m = open_error(empty_path);
  CHECK(m.find("is empty") != std::string::npos);
  // A truncated file on disk fails with the file's path in the message.
  const std::string cut_path = std::string(dir) + "/cut.gguf";
  {
    std::ofstream out(cut_path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(built.bytes.data()), 100);
  }
  m = open_error(cut_path);
  CHECK(m.find(cut_path) != std::string::npos && m.find("invalid GGUF") != std::string::npos);
  std::remove(path.c_str());
  std::remove(empty_path.c_str());
  std::remove(cut_path.c_str());
  rmdir(dir);
}

}  // namespace

int main() {
  test_reference_file();
  test_getter_errors();
  test_version_2_and_alignment();
  test_every_truncation_fails();
  test_header_errors();
  test_metadata_errors();
  test_tensor_errors();
  test_unsupported_types_load_but_are_refused();
  test_open_from_disk();
  return test_summary("test_gguf");
}
