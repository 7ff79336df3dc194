// GGUF writer (FORMATS.md §1): builds a file in memory from metadata pairs and tensors whose data
// is already encoded, and records where each field landed. The reader's tests corrupt exactly one
// field through those positions; the CUDA whole-model checks write small random-weight models with
// it, so a bare GPU machine needs no fixture files. Type ids are written as given, unknown ones
// included, so that invalid files can be built too.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "quant/types.h"

namespace hcattn::gguf {

// Appends values in host byte order, which is GGUF's little-endian order on every supported host.
struct ByteWriter {
  std::vector<uint8_t> bytes;
  template <typename T>
  void put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void put_bytes(const std::vector<uint8_t>& b) { bytes.insert(bytes.end(), b.begin(), b.end()); }
};

// A built file and the byte offset of each field a test may want to overwrite.
struct Image {
  std::vector<uint8_t> bytes;
  size_t n_tensors_pos = 8, n_kv_pos = 16;
  std::vector<size_t> kv_pos;             // start of each key-value pair
  std::vector<size_t> tensor_info_pos;    // start of each tensor info (its name length)
  std::vector<size_t> tensor_ndims_pos;   // each tensor info's n_dims field
  std::vector<size_t> tensor_type_pos;    // each tensor info's type field
  std::vector<size_t> tensor_offset_pos;  // each tensor info's offset field
  size_t data_start = 0;
};

class Writer {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout alignment; add general.alignment yourself when it is not 32

  template <typename T>
  void kv_scalar(const std::string& key, ValueType type, T value) {
    begin_kv(key, static_cast<int32_t>(type));
    kv_.put<T>(value);
  }
  void kv_string(const std::string& key, std::string_view value);
  template <typename T>
  void kv_array(const std::string& key, ValueType elem_type, const std::vector<T>& values) {
    begin_kv(key, static_cast<int32_t>(ValueType::ARRAY));
    kv_.put<int32_t>(static_cast<int32_t>(elem_type));
    kv_.put<uint64_t>(values.size());
    for (const T& v : values) kv_.put<T>(v);
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& values);
  // A pair whose value bytes are written as given, after a type id that need not be valid.
  void kv_raw(const std::string& key, int32_t type_id, const std::vector<uint8_t>& value);

  // `ne` innermost first (ne[0] is a row); `data` is the tensor's bytes already in `type_id`'s encoding.
  void tensor(const std::string& name, int32_t type_id, const std::vector<int64_t>& ne, std::vector<uint8_t> data);
  void tensor(const std::string& name, quant::GgmlType type, const std::vector<int64_t>& ne, std::vector<uint8_t> data) {
    tensor(name, static_cast<int32_t>(type), ne, std::move(data));
  }

  // Tensor data is laid out in order, each at the next aligned offset; the last tensor's data ends
  // the file, so every strict prefix of the result is a truncated file.
  Image build() const;
  // build() written to `path` (replaced if it exists). Throws hcattn::Error when it cannot be written.
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    int32_t type_id;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  void begin_kv(const std::string& key, int32_t type_id);
  uint64_t align(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }

  ByteWriter kv_;
  uint64_t n_kv_ = 0;
  std::vector<size_t> kv_starts_;
  std::vector<Tensor> tensors_;
};

}  // namespace hcattn::gguf
