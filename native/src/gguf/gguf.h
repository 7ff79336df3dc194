// GGUF v2/v3 reader: the file is memory-mapped, every header field, string length, array count, tensor
// dim, type and offset is checked against the file size before use; any violation throws hcattn::Error
// naming the field and its byte offset ("tensor 'blk.3.attn_q.weight' offset at byte 1234: 4096 bytes
// of data at offset 8192 of the data section (which starts at byte 2048) run past end of file (size N)").
// Tensor types: a file loads when every tensor type id is known (FORMATS.md §1.4), even types the
// engine cannot compute with (IQ*, Q2_K, Q3_K, ...), so that tools can list such files; unknown ids
// are a load error. The model loader calls TensorInfo::require_supported() on each tensor it uses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/types.h"

namespace hcattn::gguf {

enum class ValueType : int32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10,
  I64 = 11, F64 = 12,
};

// One metadata value. Scalars are widened (integers to int64/uint64, floats to double); arrays keep
// their element type. Array-of-array is rejected at load, as llama.cpp does.
struct Value {
  ValueType type = ValueType::U8;
  ValueType elem_type = ValueType::U8;  // for ARRAY
  int64_t i = 0;                        // signed integer types and BOOL
  uint64_t u = 0;                       // unsigned integer types
  double f = 0;                         // F32 / F64
  std::string_view str;                 // STRING (points into the mapping)
  // ARRAY: elements; for string arrays strs is filled, for numeric arrays nums (as double) and ints
  // (floats truncated toward zero, 0 when outside the int64 range; u64 above INT64_MAX wraps).
  std::vector<std::string_view> strs;
  std::vector<int64_t> ints;
  std::vector<double> nums;
};

struct TensorInfo {
  std::string name;
  quant::GgmlType type = quant::GgmlType::F32;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] innermost (a row), missing dims are 1
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr; // points into the mapping
  size_t nbytes = 0;
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_bytes() const;      // bytes of one ne[0] row in this type
  // Throws an error naming the tensor and its type when quant::type_supported(type) is false.
  void require_supported() const;
};

class File {
 public:
  // Maps and validates the whole header and tensor table. Throws hcattn::Error.
  static std::unique_ptr<File> open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer and tests); the buffer must outlive the File.
  static std::unique_ptr<File> parse(const uint8_t* data, size_t size, const std::string& name = "<memory>");
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Metadata access. find() returns nullptr when absent; the typed getters throw a clear error when the
  // key is absent (get_*) or has an unexpected type, and return the fallback for get_*_or.
  const Value* find(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;   // any integer type, must be >= 0
  double get_float(const std::string& key) const;    // F32/F64 (integers accepted)
  bool get_bool(const std::string& key) const;
  uint64_t get_uint_or(const std::string& key, uint64_t fallback) const;
  double get_float_or(const std::string& key, double fallback) const;
  std::string get_string_or(const std::string& key, const std::string& fallback) const;
  const std::map<std::string, Value>& metadata() const { return kv_; }

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  const TensorInfo& tensor(const std::string& name) const;  // throws "missing tensor 'name'"

 private:
  File() = default;
  void parse_all();
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  uint32_t version_ = 0;
  std::map<std::string, Value> kv_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace hcattn::gguf
