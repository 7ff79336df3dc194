#include "kv/f16_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace hcattn::kv {

MappedFileHandle::MappedFileHandle(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error("cannot open KV snapshot '" + path + "' to map its values: " + std::strerror(errno));
}

MappedFileHandle::~MappedFileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

F16Buffer::~F16Buffer() { unmap(); }

F16Buffer::F16Buffer(F16Buffer&& o) noexcept { *this = std::move(o); }

F16Buffer& F16Buffer::operator=(F16Buffer&& o) noexcept {
  if (this == &o) return *this;
  unmap();
  heap_ = std::move(o.heap_);
  size_ = o.size_;
  mapped_base_ = std::exchange(o.mapped_base_, nullptr);
  mapped_region_ = std::exchange(o.mapped_region_, 0);
  max_ = o.max_;
  mapped_count_ = std::exchange(o.mapped_count_, 0);
  file_offset_ = o.file_offset_;
  file_ = std::move(o.file_);
  data_ = mapped_base_ ? std::exchange(o.data_, nullptr) : heap_.data();
  o.size_ = 0;
  o.data_ = o.heap_.data();
  return *this;
}

void F16Buffer::unmap() {
  if (mapped_base_) ::munmap(mapped_base_, mapped_region_);
  mapped_base_ = nullptr;
  mapped_region_ = 0;
  mapped_count_ = 0;
  file_.reset();
}

void F16Buffer::reserve(size_t n) {
  if (mapped_base_) return;  // the whole reserved range is already there; resize() checks the bound
  heap_.reserve(n);
  data_ = heap_.data();
}

void F16Buffer::resize(size_t n) {
  if (mapped_base_) {
    if (n > max_)
      throw Error("KV buffer mapped from a snapshot holds at most " + std::to_string(max_) + " values (internal error)");
  } else {
    heap_.resize(n);
    data_ = heap_.data();
  }
  size_ = n;
}

void F16Buffer::assign(const uint16_t* first, const uint16_t* last) {
  unmap();
  heap_.assign(first, last);
  data_ = heap_.data();
  size_ = heap_.size();
}

void F16Buffer::map(std::shared_ptr<const MappedFileHandle> file, uint64_t offset, size_t count, size_t max) {
  if (offset % 2 != 0) throw Error("KV snapshot values at an odd file offset cannot be mapped (internal error)");
  unmap();
  heap_.clear();
  heap_.shrink_to_fit();
  max = std::max(max, count);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t aligned = offset / page * page;
  const size_t lead = static_cast<size_t>(offset - aligned);
  const size_t region = (lead + std::max<size_t>(max, 1) * sizeof(uint16_t) + page - 1) / page * page;
  // Address space for the whole buffer first (anonymous, reserved lazily), then the file pages over its start.
  void* base = ::mmap(nullptr, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) throw Error(std::string("cannot reserve memory for KV values: ") + std::strerror(errno));
  if (count > 0) {
    const size_t file_bytes = (lead + count * sizeof(uint16_t) + page - 1) / page * page;
    void* at = ::mmap(base, file_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file->fd(), static_cast<off_t>(aligned));
    if (at == MAP_FAILED) {
      const int err = errno;
      ::munmap(base, region);
      throw Error("cannot map KV snapshot '" + file->path() + "': " + std::strerror(err));
    }
  }
  mapped_base_ = base;
  mapped_region_ = region;
  max_ = max;
  mapped_count_ = count;
  file_offset_ = offset;
  file_ = std::move(file);
  data_ = reinterpret_cast<uint16_t*>(static_cast<char*>(base) + lead);
  size_ = count;
}

void F16Buffer::copy_prefix(const F16Buffer& src, size_t n) {
  if (src.mapped_base_ && n > 0) {
    const size_t from_file = std::min(n, src.mapped_count_);
    map(src.file_, src.file_offset_, from_file, src.max_);
    resize(n);
    if (n > from_file) std::memcpy(data_ + from_file, src.data_ + from_file, (n - from_file) * sizeof(uint16_t));
    return;
  }
  assign(src.data_, src.data_ + n);
}

void F16Buffer::limit_mapped(size_t n) { mapped_count_ = std::min(mapped_count_, n); }

size_t F16Buffer::heap_bytes() const {
  if (!mapped_base_) return heap_.capacity() * sizeof(uint16_t);
  return size_ > mapped_count_ ? (size_ - mapped_count_) * sizeof(uint16_t) : 0;
}

}  // namespace hcattn::kv
