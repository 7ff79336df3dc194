// A growable array of f16 elements (uint16_t) for the host tier of the HCAttention cache, whose first
// elements may be served straight from a KV snapshot file instead of RAM.
//
// Heap mode is a plain vector. Mapped mode reserves address space for `max` elements up front, maps
// the file's pages holding the first `mapped` elements over its start (MAP_PRIVATE: clean pages stay in
// the page cache, shared and reclaimable, and are not copied into the process), and backs the rest with
// anonymous memory, so elements appended later (and any mapped element written over after a truncation)
// live in RAM while the array stays contiguous for the kernels that read it.
//
// Invariants: data() is 2-byte aligned; size() <= capacity(); in mapped mode capacity() is fixed at
// `max` and growing past it throws; the first mapped_count_ elements equal the file (the owner calls
// limit_mapped() before it writes over any of them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hcattn::kv {

// An open file that mapped buffers keep alive so that copies of them can map it again.
class MappedFileHandle {
 public:
  explicit MappedFileHandle(const std::string& path);  // throws hcattn::Error when it cannot be opened
  ~MappedFileHandle();
  MappedFileHandle(const MappedFileHandle&) = delete;
  MappedFileHandle& operator=(const MappedFileHandle&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

class F16Buffer {
 public:
  F16Buffer() = default;
  ~F16Buffer();
  F16Buffer(F16Buffer&& other) noexcept;
  F16Buffer& operator=(F16Buffer&& other) noexcept;
  F16Buffer(const F16Buffer&) = delete;
  F16Buffer& operator=(const F16Buffer&) = delete;

  size_t size() const { return size_; }
  size_t capacity() const { return mapped_base_ ? max_ : heap_.capacity(); }
  uint16_t* data() { return data_; }
  const uint16_t* data() const { return data_; }
  uint16_t& operator[](size_t i) { return data_[i]; }
  const uint16_t& operator[](size_t i) const { return data_[i]; }
  const uint16_t* begin() const { return data_; }

  void reserve(size_t n);
  void resize(size_t n);  // new elements are unspecified until written
  // Becomes a heap buffer holding [first, last).
  void assign(const uint16_t* first, const uint16_t* last);
  // Becomes a mapped buffer: elements [0, count) are the f16 values at byte `offset` of the file (offset
  // must be even), with room for max elements in all.
  void map(std::shared_ptr<const MappedFileHandle> file, uint64_t offset, size_t count, size_t max);
  // The first n elements of src: mapped from the same file where src maps them, else copied.
  void copy_prefix(const F16Buffer& src, size_t n);
  // Only elements [0, n) still equal the file: later ones may be written over (a truncated context
  // continues there), so copies take them from memory.
  void limit_mapped(size_t n);

  // RAM this buffer owns (the heap vector, or the anonymous part of a mapped buffer in use), and the
  // bytes it reads from the file.
  size_t heap_bytes() const;
  size_t mapped_bytes() const { return mapped_count_ * sizeof(uint16_t); }

 private:
  void unmap();

  std::vector<uint16_t> heap_;
  uint16_t* data_ = nullptr;
  size_t size_ = 0;
  // Mapped mode:
  void* mapped_base_ = nullptr;
  size_t mapped_region_ = 0;  // bytes reserved at mapped_base_
  size_t max_ = 0;
  size_t mapped_count_ = 0;   // leading elements that come from the file
  uint64_t file_offset_ = 0;
  std::shared_ptr<const MappedFileHandle> file_;
};

}  // namespace hcattn::kv
