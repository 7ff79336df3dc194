// KV snapshot files (.hckv): an HCAttention cache saved with the tokens it holds, so that a context can be
// reopened without a prefill, or truncated to a segment boundary and continued.
//
// Layout (all little-endian):
//   header:   "HCKV", u32 version, u32 payload length, payload, u32 CRC32C of everything before it.
//             payload: model digest, kv config, shape, token count n, held count h (n unless the context
//             evicted tokens under a value cap), segment count, per-layer calibrated flags, codebook
//             digest (SHA-256 of every codebooks section's payload, in file order).
//   sections: tokens (n i32), positions (empty when h = n, else the h held positions, ascending i32),
//             segments (zero-padded so that the next section starts at a multiple of 8), then
//             per layer: codebooks, codes, keys, values. Each section is
//             u32 kind, u32 layer, u64 length, payload, u32 CRC32C of kind..payload. Inside a layer
//             section the KV heads follow each other; per head: codebook (g, c, d/g) f32 then residual
//             radii (g, 16) f32, code words (h, g) u16 (kv/codebook.h),
//             keys (h, d) f16, values (h, d) f16, one row per held position. A layer that is not calibrated
//             has empty codebooks and codes sections (its codes are recomputed when it calibrates).
//   The file ends exactly after the last section.
//
// Invariants: a file is written to "<path>.tmp-<pid>", fsynced, renamed over <path> and the directory is
// fsynced, so a crash leaves the old file or the new one, never a mix. A reader bounds every length by
// the file size before using it and checks every checksum before any byte of a section is used, so a
// truncated or damaged file is refused with the name of the damaged section.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/hc_cache.h"
#include "model/kv_cache.h"

namespace hcattn::kv {

// 2: the kv config holds the codebook source (workspace or built-in).
// 3: code words carry residual levels, codebooks sections hold the residual radii, config holds bound_scale.
// 4: the segments section is zero-padded so that keys and values lie at even offsets (served mapped).
// 5: the kv config holds gqa_shared.
// 6: the header holds the held count and a positions section follows the tokens (a context that evicted
//    tokens under a value cap saves what it holds). Version 5 files are still read: every position held.
inline constexpr uint32_t kSnapshotVersion = 6;

// A stretch of the context (the system prompt, one file, one question) and the hash that identifies it
// together with everything before it, so that a changed segment invalidates all later ones.
struct Segment {
  std::string id;
  std::string hash;
  int64_t begin = 0;  // token range [begin, end)
  int64_t end = 0;
};

// What a snapshot holds besides the cache contents.
struct SnapshotInfo {
  std::string model_digest;
  HcConfig config;
  model::KvShape shape;
  std::vector<int32_t> tokens;     // the token ids of positions [0, n)
  std::vector<int32_t> positions;  // the held positions, ascending, when some were evicted; empty: all of [0, n)
  std::vector<Segment> segments;   // empty, or tiling [0, n) in order
  std::string codebook_digest;
  std::vector<bool> calibrated;    // per layer
  uint64_t file_bytes = 0;
};

enum class SectionKind : uint32_t { Tokens = 1, Segments = 2, Codebooks = 3, Codes = 4, Keys = 5, Values = 6, Positions = 7 };

// One section as found in a file: `offset`/`bytes` span the whole section (its framing included),
// `data`/`size` its payload inside the mapping.
struct SnapshotSection {
  std::string name;  // "tokens", "segments", "layer 3 codes", ...
  SectionKind kind;
  int layer;         // -1 for tokens and segments
  uint64_t offset;
  uint64_t bytes;
  const uint8_t* data;
  uint64_t size;
};

// Streams sections into the temp file; commit() makes the file appear at its path.
class SnapshotWriter {
 public:
  explicit SnapshotWriter(const std::string& path);  // creates "<path>.tmp-<pid>"
  ~SnapshotWriter();                                 // removes the temp file unless committed
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  void write_header(const std::vector<uint8_t>& payload);
  // A section of exactly `bytes` payload bytes, given by write() calls before end_section().
  void begin_section(SectionKind kind, int layer, uint64_t bytes);
  void write(const void* data, size_t n);
  void end_section();
  void commit();  // flush, fsync, rename, fsync the directory

  uint64_t bytes_written() const { return written_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  void put(const void* data, size_t n);  // buffered, no checksum
  void flush();
  [[noreturn]] void fail(const std::string& what, int err);

  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
  uint32_t crc_ = 0;
  uint64_t section_left_ = 0;
  bool in_section_ = false;
};

// A snapshot mapped read-only and validated completely (structure, lengths, checksums, codebook
// digest) by the constructor, which throws hcattn::Error naming the damaged section otherwise.
class SnapshotReader {
 public:
  explicit SnapshotReader(const std::string& path);
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  const std::string& path() const { return path_; }
  const SnapshotInfo& info() const { return info_; }
  const std::vector<SnapshotSection>& sections() const { return sections_; }
  const SnapshotSection& section(SectionKind kind, int layer) const;  // layer sections only

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  SnapshotInfo info_;
  std::vector<SnapshotSection> sections_;
};

// Saves `cache` (positions [0, cache.stored_tokens()), which `tokens` must match in count) atomically.
// Throws hcattn::Error naming the path and what to do (disk full, directory missing, ...); the
// destination is then untouched and no temp file is left.
void save_snapshot(const std::string& path, const HcKvCache& cache, const std::string& model_digest,
                   const std::vector<int32_t>& tokens, const std::vector<Segment>& segments);

// The end of the first `n_segments` segments (0 for none): a token count load_snapshot() can keep.
int64_t segment_boundary(const std::vector<Segment>& segments, size_t n_segments);

struct LoadedSnapshot {
  SnapshotInfo info;  // tokens and segments cut to the kept prefix
  std::unique_ptr<HcKvCache> cache;
};

// Loads a snapshot made for this model digest, shape and config (anything else is refused with a
// message saying which setting differs), keeping positions [0, keep_tokens) (-1: all). keep_tokens
// must be 0, the token count, or a segment boundary; the result then equals a fresh prefill of those
// tokens bit for bit (when the saved context evicted nothing), so storing can continue from keep_tokens. map_values: the kept keys and values are
// served from the file (make_hc_kv_cache_from_snapshot).
LoadedSnapshot load_snapshot(const std::string& path, const std::string& model_digest, const model::KvShape& shape,
                             const HcConfig& config, int capacity, int64_t keep_tokens = -1, bool map_values = false);

}  // namespace hcattn::kv
