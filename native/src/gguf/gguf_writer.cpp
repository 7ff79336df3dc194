#include "gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>

#include "common/error.h"

namespace hcattn::gguf {

namespace {
constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
}  // namespace

void Writer::kv_string(const std::string& key, std::string_view value) {
  begin_kv(key, static_cast<int32_t>(ValueType::STRING));
  kv_.put_string(value);
}

void Writer::kv_string_array(const std::string& key, const std::vector<std::string>& values) {
  begin_kv(key, static_cast<int32_t>(ValueType::ARRAY));
  kv_.put<int32_t>(static_cast<int32_t>(ValueType::STRING));
  kv_.put<uint64_t>(values.size());
  for (const std::string& v : values) kv_.put_string(v);
}

void Writer::kv_raw(const std::string& key, int32_t type_id, const std::vector<uint8_t>& value) {
  begin_kv(key, type_id);
  kv_.put_bytes(value);
}

void Writer::tensor(const std::string& name, int32_t type_id, const std::vector<int64_t>& ne, std::vector<uint8_t> data) {
  tensors_.push_back({name, type_id, ne, std::move(data)});
}

void Writer::begin_kv(const std::string& key, int32_t type_id) {
  kv_starts_.push_back(kv_.bytes.size());
  kv_.put_string(key);
  kv_.put<int32_t>(type_id);
  ++n_kv_;
}

Image Writer::build() const {
  Image out;
  ByteWriter w;
  w.put<uint32_t>(kMagic);
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
    w.put<int32_t>(t.type_id);
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

void Writer::write(const std::string& path) const {
  const Image image = build();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("cannot create the GGUF file " + path + ": " + std::strerror(errno));
  const bool written = std::fwrite(image.bytes.data(), 1, image.bytes.size(), f) == image.bytes.size();
  const int write_errno = errno;
  if (std::fclose(f) != 0 || !written) {
    std::remove(path.c_str());
    throw Error("cannot write the GGUF file " + path + ": " + std::strerror(written ? errno : write_errno) +
                " (is the disk full?)");
  }
}

}  // namespace hcattn::gguf
