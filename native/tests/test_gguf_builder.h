// A small GGUF writer for the reader's tests: builds valid files in memory (FORMATS.md §1) and
// records where each field landed so a test can corrupt exactly one of them.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace hcattn_test {

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

// Value type ids (FORMATS.md §1.2).
enum GgufValueType : int32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};

struct BuiltGguf {
  std::vector<uint8_t> bytes;
  size_t n_tensors_pos = 8, n_kv_pos = 16;
  std::vector<size_t> kv_pos;             // start of each key-value pair
  std::vector<size_t> tensor_info_pos;    // start of each tensor info (its name length)
  std::vector<size_t> tensor_ndims_pos;   // each tensor info's n_dims field
  std::vector<size_t> tensor_type_pos;    // each tensor info's type field
  std::vector<size_t> tensor_offset_pos;  // each tensor info's offset field
  size_t data_start = 0;
};

class GgufBuilder {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout alignment; add general.alignment yourself when it is not 32

  template <typename T>
  void kv_scalar(const std::string& key, int32_t type, T value) {
    begin_kv(key, type);
    kv_.put<T>(value);
  }
  void kv_string(const std::string& key, std::string_view value) {
    begin_kv(key, kString);
    kv_.put_string(value);
  }
  template <typename T>
  void kv_array(const std::string& key, int32_t elem_type, const std::vector<T>& values) {
    begin_kv(key, kArray);
    kv_.put<int32_t>(elem_type);
    kv_.put<uint64_t>(values.size());
    for (const T& v : values) kv_.put<T>(v);
  }
  void kv_string_array(const std::string& key, const std::vector<std::string>& values) {
    begin_kv(key, kArray);
    kv_.put<int32_t>(kString);
    kv_.put<uint64_t>(values.size());
    for (const std::string& v : values) kv_.put_string(v);
  }
  // A pair whose value bytes are written as given (for invalid value types).
  void kv_raw(const std::string& key, int32_t type, const std::vector<uint8_t>& value) {
    begin_kv(key, type);
    kv_.put_bytes(value);
  }

  void tensor(const std::string& name, int32_t type, const std::vector<int64_t>& ne, std::vector<uint8_t> data) {
    tensors_.push_back({name, type, ne, std::move(data)});
  }

  // Tensor data is laid out in order, each at the next aligned offset; the last tensor's data ends
  // the file, so every strict prefix of the result is a truncated file.
  BuiltGguf build() const {
    BuiltGguf out;
    ByteWriter w;
    w.put<uint32_t>(0x46554747);
    w.put<uint32_t>(version);
    w.put<uint64_t>(tensors_.size());
    w.put<uint64_t>(n_kv_);
    const size_t kv_base = w.bytes.size();
    for (size_t p : kv_starts_) out.kv_pos.push_back(kv_base + p);
    w.put_bytes(kv_.bytes);
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const Tensor& t : tensors_) {
      offset = align(offset);
      offsets.push_back(offset);
      out.tensor_info_pos.push_back(w.bytes.size());
      w.put_string(t.name);
      out.tensor_ndims_pos.push_back(w.bytes.size());
      w.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (int64_t n : t.ne) w.put<int64_t>(n);
      out.tensor_type_pos.push_back(w.bytes.size());
      w.put<int32_t>(t.type);
      out.tensor_offset_pos.push_back(w.bytes.size());
      w.put<uint64_t>(offset);
      offset += t.data.size();
    }
    // Padding before the data section; a file without tensors ends right after its header.
    if (!tensors_.empty()) w.bytes.resize(align(w.bytes.size()), 0);
    out.data_start = w.bytes.size();
    for (size_t k = 0; k < tensors_.size(); ++k) {
      w.bytes.resize(out.data_start + offsets[k], 0);
      w.put_bytes(tensors_[k].data);
    }
    out.bytes = std::move(w.bytes);
    return out;
  }

 private:
  struct Tensor {
    std::string name;
    int32_t type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  void begin_kv(const std::string& key, int32_t type) {
    kv_starts_.push_back(kv_.bytes.size());
    kv_.put_string(key);
    kv_.put<int32_t>(type);
    ++n_kv_;
  }
  uint64_t align(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }

  ByteWriter kv_;
  uint64_t n_kv_ = 0;
  std::vector<size_t> kv_starts_;
  std::vector<Tensor> tensors_;
};

template <typename T>
void patch(std::vector<uint8_t>& bytes, size_t pos, T value) {
  std::memcpy(bytes.data() + pos, &value, sizeof(T));
}

}  // namespace hcattn_test
