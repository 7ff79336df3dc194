// Open-addressing hash tables for the tokenizer's hot paths: byte strings → int32 (vocabulary lookups,
// per-call BPE result cache) and 64-bit keys → merge (BPE pair ranks). Both look up without allocating,
// which std::unordered_map<std::string, …> cannot do for a string_view key in C++17.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace hcattn::tokenizer {

inline uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0x100000001B3ULL);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return mix64(h ^ w);
}

// Byte string → int32 value. Keys are copied into one arena. Insert never replaces an existing value.
class BytesMap {
 public:
  static constexpr int32_t kAbsent = -1;

  explicit BytesMap(size_t expected = 16) { rehash(capacity_for(expected)); }

  int32_t find(std::string_view key) const {
    const uint64_t h = hash_bytes(key.data(), key.size());
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == kEmpty) return kAbsent;
      if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
        return s.value;
      }
    }
  }

  // Returns the value now stored for key: `value` when newly inserted, the existing one otherwise.
  int32_t insert(std::string_view key, int32_t value) {
    if ((count_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    const uint64_t h = hash_bytes(key.data(), key.size());
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.len == kEmpty) {
        s.hash = h;
        s.offset = arena_.size();
        s.len = static_cast<uint32_t>(key.size());
        s.value = value;
        arena_.append(key.data(), key.size());
        ++count_;
        return value;
      }
      if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
        return s.value;
      }
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  struct Slot {
    uint64_t hash = 0;
    size_t offset = 0;
    uint32_t len = kEmpty;
    int32_t value = 0;
  };

  static size_t capacity_for(size_t n) {
    size_t c = 16;
    while (c < n * 2) c *= 2;
    return c;
  }

  void rehash(size_t capacity) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.len == kEmpty) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// (left symbol, right symbol) → (merge rank, merged symbol).
class MergeMap {
 public:
  struct Merge {
    int32_t rank;
    uint32_t result;
  };

  explicit MergeMap(size_t expected = 16) {
    size_t c = 16;
    while (c < expected * 2) c *= 2;
    slots_.assign(c, Slot{});
    mask_ = c - 1;
  }

  static uint64_t key(uint32_t left, uint32_t right) { return (uint64_t(left) << 32) | right; }

  const Merge* find(uint32_t left, uint32_t right) const {
    const uint64_t k = key(left, right);
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.merge.rank < 0) return nullptr;
      if (s.key == k) return &s.merge;
    }
  }

  // Keeps the first merge given for a pair (a later duplicate does not replace its rank). rank >= 0.
  void insert(uint32_t left, uint32_t right, Merge merge) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const uint64_t k = key(left, right);
    for (size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.merge.rank < 0) {
        s = Slot{k, merge};
        ++count_;
        return;
      }
      if (s.key == k) return;
    }
  }

 private:
  struct Slot {  // empty while merge.rank < 0
    uint64_t key = 0;
    Merge merge{-1, 0};
  };

  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.merge.rank < 0) continue;
      size_t i = mix64(s.key) & mask_;
      while (slots_[i].merge.rank >= 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

}  // namespace hcattn::tokenizer
