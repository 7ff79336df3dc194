// GGUF reader (FORMATS.md §1). Every read goes through Cursor, which checks the remaining bytes
// first; counts are checked against what the rest of the file could possibly hold before anything is
// allocated, so a hostile file costs at most a small multiple of its own size in memory.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace hcattn::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxKeyLength = 65535;
constexpr uint64_t kMaxTensorNameLength = 63;  // ggml's GGML_MAX_NAME (64) includes the NUL
// Smallest possible encodings, used to bound counts before allocating: a KV pair is a key (u64
// length + at least one byte), a value type (i32) and at least one value byte; a tensor info is a
// name (u64 length + at least one byte), n_dims (u32), at least one dim (i64), a type (i32) and an
// offset (u64).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

bool valid_value_type(int32_t id) { return id >= 0 && id <= static_cast<int32_t>(ValueType::F64); }

// Encoded size of a scalar (0 for STRING and ARRAY, whose size depends on their contents).
uint64_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return 0;
}

// Reads little-endian fields with bounds checks. Error messages name the field being read; to keep
// the common (valid) path free of string building, the name is assembled only on failure from the
// structure being read (set_context, e.g. "metadata 'general.name'"), the array element index (if
// any) and the part ("count", "ne[1]", ...).
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void set_context(std::string context) {
    context_ = std::move(context);
    element_ = -1;
  }
  void set_element(int64_t k) { element_ = k; }

  std::string field(const char* part) const {
    std::string f = context_;
    if (element_ >= 0) f += "[" + std::to_string(element_) + "]";
    if (*part) {
      if (!f.empty()) f += ' ';
      f += part;
    }
    return f;
  }

  // Throws "<file>: invalid GGUF: <field> at byte <offset>: <problem>".
  [[noreturn]] void fail(const char* part, size_t at, const std::string& problem) const {
    throw Error(name_ + ": invalid GGUF: " + field(part) + " at byte " + std::to_string(at) + ": " + problem +
                " (the file is damaged, truncated or not a GGUF model; download it again)");
  }

  void need(uint64_t n, const char* part) const {
    if (n > remaining()) {
      fail(part, pos_, "needs " + std::to_string(n) + " bytes but the file has only " +
                           std::to_string(remaining()) + " left (truncated file)");
    }
  }

  template <typename T>
  T read(const char* part) {
    need(sizeof(T), part);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // GGUF is little-endian, as is every host we build for
    pos_ += sizeof(T);
    return v;
  }

  // A u64 length and that many bytes; part_length names the length field in errors.
  std::string_view read_string(const char* part, const char* part_length, uint64_t max_len) {
    const size_t at = pos_;
    const uint64_t len = read<uint64_t>(part_length);
    if (len > max_len) {
      fail(part, at, "length " + std::to_string(len) + " exceeds the limit of " + std::to_string(max_len));
    }
    need(len, part);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
  std::string context_;
  int64_t element_ = -1;
};

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// Reads one scalar of type t into v.
void read_scalar(Cursor& c, ValueType t, Value& v) {
  switch (t) {
    case ValueType::U8: v.u = c.read<uint8_t>(""); break;
    case ValueType::I8: v.i = c.read<int8_t>(""); break;
    case ValueType::U16: v.u = c.read<uint16_t>(""); break;
    case ValueType::I16: v.i = c.read<int16_t>(""); break;
    case ValueType::U32: v.u = c.read<uint32_t>(""); break;
    case ValueType::I32: v.i = c.read<int32_t>(""); break;
    case ValueType::F32: v.f = c.read<float>(""); break;
    case ValueType::BOOL: v.i = c.read<uint8_t>("") != 0 ? 1 : 0; break;  // any non-zero is true, as in ggml
    case ValueType::U64: v.u = c.read<uint64_t>(""); break;
    case ValueType::I64: v.i = c.read<int64_t>(""); break;
    case ValueType::F64: v.f = c.read<double>(""); break;
    case ValueType::STRING: case ValueType::ARRAY: break;
  }
}

bool is_unsigned(ValueType t) {
  return t == ValueType::U8 || t == ValueType::U16 || t == ValueType::U32 || t == ValueType::U64;
}

void read_array(Cursor& c, Value& v) {
  const size_t type_at = c.pos();
  const int32_t elem_id = c.read<int32_t>("element type");
  if (!valid_value_type(elem_id)) c.fail("element type", type_at, "unknown value type " + std::to_string(elem_id));
  const ValueType elem = static_cast<ValueType>(elem_id);
  if (elem == ValueType::ARRAY) c.fail("element type", type_at, "arrays of arrays are not supported");
  v.elem_type = elem;
  const size_t count_at = c.pos();
  const uint64_t count = c.read<uint64_t>("count");
  const uint64_t min_elem = elem == ValueType::STRING ? 8 : scalar_size(elem);
  if (count > c.remaining() / min_elem) {
    c.fail("count", count_at, std::to_string(count) + " elements of " + value_type_name(elem) +
                                  " cannot fit in the " + std::to_string(c.remaining()) + " bytes left in the file");
  }
  const size_t n = static_cast<size_t>(count);
  if (elem == ValueType::STRING) {
    v.strs.reserve(n);
    for (size_t k = 0; k < n; ++k) {
      c.set_element(static_cast<int64_t>(k));
      v.strs.push_back(c.read_string("", "length", kNoLimit));
    }
    return;
  }
  v.ints.reserve(n);
  v.nums.reserve(n);
  Value elem_value;
  for (size_t k = 0; k < n; ++k) {
    c.set_element(static_cast<int64_t>(k));
    read_scalar(c, elem, elem_value);
    if (elem == ValueType::F32 || elem == ValueType::F64) {
      // Converting a NaN or out-of-range double to an integer is undefined behaviour; store 0.
      const double f = elem_value.f;
      const bool fits = f > -9.2e18 && f < 9.2e18;  // false for NaN
      v.ints.push_back(fits ? static_cast<int64_t>(f) : 0);
      v.nums.push_back(f);
    } else if (is_unsigned(elem)) {
      v.ints.push_back(static_cast<int64_t>(elem_value.u));
      v.nums.push_back(static_cast<double>(elem_value.u));
    } else {
      v.ints.push_back(elem_value.i);
      v.nums.push_back(static_cast<double>(elem_value.i));
    }
  }
}

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

size_t TensorInfo::row_bytes() const { return quant::row_size(type, ne[0]); }

void TensorInfo::require_supported() const {
  if (quant::type_supported(type)) return;
  throw Error("tensor '" + name + "' has type " + quant::type_name(type) +
              ", which this engine cannot compute with; use a model quantized as F32, F16, BF16, Q8_0, "
              "Q4_0, Q4_K_M, Q5_K_M or Q6_K");
}

std::unique_ptr<File> File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error("cannot open model file '" + path + "': " + std::strerror(errno) + " (check the model path)");
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot read model file '" + path + "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("model path '" + path + "' is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw Error("model file '" + path + "' is empty (download it again)");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file contents reachable
  if (map == MAP_FAILED) {
    throw Error("cannot memory-map model file '" + path + "' (" + std::to_string(size) +
                " bytes): " + std::strerror(map_err));
  }
  std::unique_ptr<File> file(new File());
  file->path_ = path;
  file->mapping_ = map;
  file->base_ = static_cast<const uint8_t*>(map);
  file->size_ = size;
  file->parse_all();
  return file;
}

std::unique_ptr<File> File::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<File> file(new File());
  file->path_ = name;
  file->base_ = data;
  file->size_ = size;
  file->parse_all();
  return file;
}

File::~File() {
  if (mapping_) munmap(mapping_, size_);
}

void File::parse_all() {
  Cursor c(base_, size_, path_);

  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    static const char* hex = "0123456789abcdef";
    std::string found;
    for (int k = 0; k < 4; ++k) {
      const uint8_t b = static_cast<uint8_t>(magic >> (8 * k));
      found += hex[b >> 4];
      found += hex[b & 15];
    }
    c.fail("magic", 0, "expected the bytes 'GGUF', found 0x" + found + " (not a GGUF file)");
  }
  const uint32_t version = c.read<uint32_t>("version");
  if (version == 1) c.fail("version", 4, "GGUF version 1 is no longer supported; convert the model again");
  if (version < 2 || version > 3) {
    c.fail("version", 4, "unsupported GGUF version " + std::to_string(version) + " (this engine reads 2 and 3)");
  }
  version_ = version;

  const uint64_t n_tensors = c.read<uint64_t>("n_tensors");
  const uint64_t n_kv = c.read<uint64_t>("n_kv");
  if (n_kv > c.remaining() / kMinKvBytes) {
    c.fail("n_kv", 16, std::to_string(n_kv) + " key-value pairs cannot fit in the " +
                           std::to_string(c.remaining()) + " bytes left in the file");
  }
  if (n_tensors > (c.remaining() - n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    c.fail("n_tensors", 8, std::to_string(n_tensors) + " tensor infos cannot fit in the " +
                               std::to_string(c.remaining()) + " bytes left in the file");
  }

  uint64_t alignment = kDefaultAlignment;
  for (uint64_t k = 0; k < n_kv; ++k) {
    const size_t key_at = c.pos();
    c.set_context("metadata key #" + std::to_string(k));
    const std::string_view key = c.read_string("", "length", kMaxKeyLength);
    if (key.empty()) c.fail("", key_at, "empty key");
    std::string key_str(key);
    c.set_context("metadata " + quoted(key));
    if (kv_.count(key_str)) c.fail("", key_at, "duplicate key");
    const size_t type_at = c.pos();
    const int32_t type_id = c.read<int32_t>("value type");
    if (!valid_value_type(type_id)) c.fail("value type", type_at, "unknown value type " + std::to_string(type_id));
    Value v;
    v.type = static_cast<ValueType>(type_id);
    if (v.type == ValueType::STRING) {
      v.str = c.read_string("", "length", kNoLimit);
    } else if (v.type == ValueType::ARRAY) {
      read_array(c, v);
    } else {
      read_scalar(c, v.type, v);
    }
    if (key_str == "general.alignment") {
      if (v.type != ValueType::U32) {
        c.fail("value type", type_at, std::string("must be u32, found ") + value_type_name(v.type));
      }
      if (!is_power_of_two(v.u)) c.fail("", type_at + 4, std::to_string(v.u) + " is not a power of two");
      alignment = v.u;
    }
    kv_.emplace(std::move(key_str), std::move(v));
  }

  static const char* const kNeField[4] = {"ne[0]", "ne[1]", "ne[2]", "ne[3]"};
  tensors_.reserve(static_cast<size_t>(n_tensors));
  std::vector<size_t> offset_field_at;
  offset_field_at.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const size_t name_at = c.pos();
    c.set_context("tensor info #" + std::to_string(k));
    const std::string_view name = c.read_string("name", "name length", kMaxTensorNameLength);
    if (name.empty()) c.fail("name", name_at, "empty tensor name");
    TensorInfo t;
    t.name = std::string(name);
    c.set_context("tensor " + quoted(name));
    if (tensor_index_.count(t.name)) c.fail("", name_at, "duplicate tensor name");

    const size_t dims_at = c.pos();
    const uint32_t n_dims = c.read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > 4) c.fail("n_dims", dims_at, std::to_string(n_dims) + " is not in 1..4");
    t.n_dims = static_cast<int>(n_dims);
    uint64_t n_elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const size_t ne_at = c.pos();
      const int64_t ne = c.read<int64_t>(kNeField[d]);
      if (ne < 0) c.fail(kNeField[d], ne_at, "negative dimension " + std::to_string(ne));
      if (ne != 0 && n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / static_cast<uint64_t>(ne)) {
        c.fail(kNeField[d], ne_at, "element count overflows 64 bits");
      }
      n_elems *= static_cast<uint64_t>(ne);
      t.ne[d] = ne;
    }

    const size_t type_at = c.pos();
    const int32_t type_id = c.read<int32_t>("type");
    int block_elems = 0;
    size_t block_bytes = 0;
    if (!quant::type_geometry(type_id, &block_elems, &block_bytes)) {
      c.fail("type", type_at, "unknown tensor type id " + std::to_string(type_id) +
                                  " (the file needs a newer reader, or is damaged)");
    }
    t.type = static_cast<quant::GgmlType>(type_id);
    if (t.ne[0] % block_elems != 0) {
      c.fail("ne[0]", dims_at + 4, std::to_string(t.ne[0]) + " is not a multiple of the " +
                                       quant::type_name(t.type) + " block size " + std::to_string(block_elems));
    }
    // nbytes = blocks per row * block bytes * rows; every factor is bounded, but the product may not be.
    const uint64_t blocks_per_row = static_cast<uint64_t>(t.ne[0] / block_elems);
    const uint64_t rows = n_elems == 0 ? 0 : n_elems / static_cast<uint64_t>(t.ne[0]);
    constexpr uint64_t kMaxBytes = std::numeric_limits<size_t>::max();
    if (blocks_per_row > kMaxBytes / block_bytes ||
        (rows != 0 && blocks_per_row * block_bytes > kMaxBytes / rows)) {
      c.fail("", name_at, "data size overflows");
    }
    t.nbytes = static_cast<size_t>(blocks_per_row * block_bytes * rows);

    const size_t offset_at = c.pos();
    t.offset = c.read<uint64_t>("offset");
    if (t.offset % alignment != 0) {
      c.fail("offset", offset_at, std::to_string(t.offset) + " is not a multiple of the alignment " +
                                      std::to_string(alignment));
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
    offset_field_at.push_back(offset_at);
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  const uint64_t info_end = c.pos();
  const uint64_t padding = (alignment - info_end % alignment) % alignment;
  c.set_context("");
  if (n_tensors > 0 && padding > size_ - info_end) {
    c.fail("data section", info_end, "padding to the alignment " + std::to_string(alignment) +
                                         " runs past the end of the file (size " + std::to_string(size_) + ")");
  }
  const uint64_t data_start = info_end + padding;
  for (size_t k = 0; k < tensors_.size(); ++k) {
    TensorInfo& t = tensors_[k];
    const uint64_t available = size_ - data_start;
    if (t.offset > available || t.nbytes > available - t.offset) {
      c.set_context("tensor " + quoted(t.name));
      c.fail("offset", offset_field_at[k],
             std::to_string(t.nbytes) + " bytes of data at offset " + std::to_string(t.offset) +
                 " of the data section (which starts at byte " + std::to_string(data_start) +
                 ") run past end of file (size " + std::to_string(size_) + ")");
    }
    t.data = base_ + data_start + t.offset;
  }
}

const Value* File::find(const std::string& key) const {
  const auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {

[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const Value& v, const char* wanted) {
  throw Error(path + ": metadata '" + key + "' should be " + wanted + " but is " + value_type_name(v.type));
}

const Value& require(const File& f, const std::string& key) {
  const Value* v = f.find(key);
  if (!v) throw Error(f.path() + ": missing metadata key '" + key + "' (the model file is incomplete)");
  return *v;
}

uint64_t as_uint(const std::string& path, const std::string& key, const Value& v) {
  switch (v.type) {
    case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64:
      return v.u;
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
      if (v.i < 0) throw Error(path + ": metadata '" + key + "' = " + std::to_string(v.i) + " must not be negative");
      return static_cast<uint64_t>(v.i);
    default:
      wrong_type(path, key, v, "an integer");
  }
}

double as_float(const std::string& path, const std::string& key, const Value& v) {
  switch (v.type) {
    case ValueType::F32: case ValueType::F64:
      return v.f;
    case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64:
      return static_cast<double>(v.u);
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64:
      return static_cast<double>(v.i);
    default:
      wrong_type(path, key, v, "a number");
  }
}

}  // namespace

std::string File::get_string(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::STRING) wrong_type(path_, key, v, "a string");
  return std::string(v.str);
}

uint64_t File::get_uint(const std::string& key) const { return as_uint(path_, key, require(*this, key)); }

double File::get_float(const std::string& key) const { return as_float(path_, key, require(*this, key)); }

bool File::get_bool(const std::string& key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::BOOL) wrong_type(path_, key, v, "a bool");
  return v.i != 0;
}

uint64_t File::get_uint_or(const std::string& key, uint64_t fallback) const {
  const Value* v = find(key);
  return v ? as_uint(path_, key, *v) : fallback;
}

double File::get_float_or(const std::string& key, double fallback) const {
  const Value* v = find(key);
  return v ? as_float(path_, key, *v) : fallback;
}

std::string File::get_string_or(const std::string& key, const std::string& fallback) const {
  const Value* v = find(key);
  if (!v) return fallback;
  if (v->type != ValueType::STRING) wrong_type(path_, key, *v, "a string");
  return std::string(v->str);
}

const TensorInfo* File::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(const std::string& name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) throw Error(path_ + ": missing tensor '" + name + "' (the model file is incomplete or not a llama model)");
  return *t;
}

}  // namespace hcattn::gguf
