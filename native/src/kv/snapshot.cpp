#include "kv/snapshot.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "engine/sha256.h"
#include "kv/checksum.h"
#include "kv/codebook.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "KV snapshots store arrays in little-endian byte order; a big-endian build needs byte swapping here"
#endif

namespace hcattn::kv {

namespace {

constexpr char kMagic[4] = {'H', 'C', 'K', 'V'};
constexpr size_t kHeaderFraming = 12;   // magic, version, payload length
constexpr size_t kSectionFraming = 16;  // kind, layer, length
constexpr size_t kWriteBuffer = 1 << 20;
constexpr uint32_t kMaxString = 1 << 16;

// Little-endian encoding of the header and segment table.
struct Encoder {
  std::vector<uint8_t> bytes;
  void u8(uint8_t v) { bytes.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    u32(b);
  }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
};

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint64_t load_u64(const uint8_t* p) { return load_u32(p) | static_cast<uint64_t>(load_u32(p + 4)) << 32; }

// The damaged-file error every check below throws: which file, which section, what, and what to do.
[[noreturn]] void damaged(const std::string& path, const std::string& section, const std::string& what) {
  throw Error("KV snapshot '" + path + "' is damaged in section '" + section + "': " + what +
              "; delete the file and the next prefill will rebuild it");
}

// Bounds-checked reading of an encoded payload; running past its end is damage in `section`.
struct Decoder {
  const uint8_t* p;
  size_t left;
  const std::string& path;
  const std::string& section;

  const uint8_t* take(size_t n) {
    if (n > left) damaged(path, section, "a field runs past the end of the section");
    const uint8_t* at = p;
    p += n;
    left -= n;
    return at;
  }
  uint8_t u8() { return *take(1); }
  uint32_t u32() { return load_u32(take(4)); }
  uint64_t u64() { return load_u64(take(8)); }
  int32_t i32() { return static_cast<int32_t>(u32()); }
  int64_t i64() { return static_cast<int64_t>(u64()); }
  float f32() {
    const uint32_t b = u32();
    float v;
    std::memcpy(&v, &b, 4);
    return v;
  }
  std::string str() {
    const uint32_t n = u32();
    if (n > kMaxString) damaged(path, section, "a string length of " + std::to_string(n) + " bytes is implausible");
    const uint8_t* s = take(n);
    return std::string(reinterpret_cast<const char*>(s), n);
  }
};

void encode_config(Encoder& e, const HcConfig& c) {
  e.u32(static_cast<uint32_t>(c.budget));
  e.i32(c.centroids);
  e.f32(c.select.top_p);
  e.i64(c.select.sinks);
  e.i64(c.select.recent);
  e.i64(c.select.k_max);
  e.f32(c.select.margin);
  e.u8(c.rescore ? 1 : 0);
  e.i32(c.calibration_tokens);
  e.i32(c.star_block);
  e.u64(c.seed);
  e.u8(static_cast<uint8_t>(c.codebook_source));
  e.f32(c.bound_scale);
  e.u8(c.gqa_shared ? 1 : 0);
}

HcConfig decode_config(Decoder& d) {
  HcConfig c;
  const uint32_t budget = d.u32();
  if (budget > static_cast<uint32_t>(KeyBudget::Eighth)) damaged(d.path, d.section, "unknown KV budget code " + std::to_string(budget));
  c.budget = static_cast<KeyBudget>(budget);
  c.centroids = d.i32();
  c.select.top_p = d.f32();
  c.select.sinks = d.i64();
  c.select.recent = d.i64();
  c.select.k_max = d.i64();
  c.select.margin = d.f32();
  c.rescore = d.u8() != 0;
  c.calibration_tokens = d.i32();
  c.star_block = d.i32();
  c.seed = d.u64();
  const uint8_t source = d.u8();
  if (source > static_cast<uint8_t>(CodebookSource::Preset)) damaged(d.path, d.section, "unknown codebook source " + std::to_string(source));
  c.codebook_source = static_cast<CodebookSource>(source);
  c.bound_scale = d.f32();
  c.gqa_shared = d.u8() != 0;
  return c;
}

std::string section_name(SectionKind kind, int layer) {
  const char* what = kind == SectionKind::Tokens     ? "tokens"
                     : kind == SectionKind::Segments ? "segments"
                     : kind == SectionKind::Codebooks ? "codebooks"
                     : kind == SectionKind::Codes    ? "codes"
                     : kind == SectionKind::Keys     ? "keys"
                     : kind == SectionKind::Values   ? "values"
                                                     : "positions";
  return layer < 0 ? std::string(what) : "layer " + std::to_string(layer) + " " + what;
}

// a * b, or damage when the product cannot be a length inside a file.
uint64_t mul(uint64_t a, uint64_t b, const std::string& path) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) damaged(path, "header", "section sizes overflow");
  return a * b;
}

std::string describe_errno(int err) { return std::strerror(err); }

}  // namespace

// ---- writing ----

SnapshotWriter::SnapshotWriter(const std::string& path) : path_(path) {
  tmp_ = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create the temp file '" + tmp_ + "'", errno);
  buf_.reserve(kWriteBuffer);
}

SnapshotWriter::~SnapshotWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void SnapshotWriter::fail(const std::string& what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  std::string advice = "check that the directory exists and is writable, or choose another snapshot path";
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) advice = "free disk space or choose another snapshot path";
  throw Error("cannot write KV snapshot '" + path_ + "': " + what + ": " + describe_errno(err) + "; " + advice +
              " (the previous snapshot, if any, is unchanged)");
}

void SnapshotWriter::flush() {
  size_t done = 0;
  while (done < buf_.size()) {
    const ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("writing '" + tmp_ + "' failed", errno);
    }
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

void SnapshotWriter::put(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  written_ += n;
  while (n > 0) {
    const size_t take = std::min(n, kWriteBuffer - buf_.size());
    buf_.insert(buf_.end(), p, p + take);
    p += take;
    n -= take;
    if (buf_.size() == kWriteBuffer) flush();
  }
}

void SnapshotWriter::write_header(const std::vector<uint8_t>& payload) {
  Encoder e;
  e.bytes.assign(kMagic, kMagic + 4);
  e.u32(kSnapshotVersion);
  e.u32(static_cast<uint32_t>(payload.size()));
  e.bytes.insert(e.bytes.end(), payload.begin(), payload.end());
  e.u32(crc32c(e.bytes.data(), e.bytes.size()));
  put(e.bytes.data(), e.bytes.size());
}

void SnapshotWriter::begin_section(SectionKind kind, int layer, uint64_t bytes) {
  Encoder e;
  e.u32(static_cast<uint32_t>(kind));
  e.i32(layer);
  e.u64(bytes);
  crc_ = crc32c(e.bytes.data(), e.bytes.size());
  put(e.bytes.data(), e.bytes.size());
  section_left_ = bytes;
  in_section_ = true;
}

void SnapshotWriter::write(const void* data, size_t n) {
  if (!in_section_ || n > section_left_)
    throw Error("KV snapshot writer: " + std::to_string(n) + " bytes do not fit the section being written (internal error)");
  crc_ = crc32c(data, n, crc_);
  section_left_ -= n;
  put(data, n);
}

void SnapshotWriter::end_section() {
  if (!in_section_ || section_left_ != 0)
    throw Error("KV snapshot writer: section ended " + std::to_string(section_left_) + " bytes short (internal error)");
  Encoder e;
  e.u32(crc_);
  put(e.bytes.data(), e.bytes.size());
  in_section_ = false;
}

void SnapshotWriter::commit() {
  flush();
  if (::fsync(fd_) != 0) fail("fsync of '" + tmp_ + "' failed", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("closing '" + tmp_ + "' failed", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("renaming '" + tmp_ + "' over it failed", errno);
  committed_ = true;
  // The rename is durable only once the directory entry is: fsync the directory too.
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // some file systems refuse fsync on directories; the file itself is already durable
    ::close(dfd);
  }
}

void save_snapshot(const std::string& path, const HcKvCache& cache, const std::string& model_digest,
                   const std::vector<int32_t>& tokens, const std::vector<Segment>& segments) {
  const int64_t n = cache.stored_tokens();
  if (static_cast<int64_t>(tokens.size()) != n)
    throw Error("cannot save KV snapshot '" + path + "': " + std::to_string(tokens.size()) + " token ids given for a cache of " +
                std::to_string(n) + " positions");
  int64_t expect = 0;
  for (const Segment& s : segments) {
    if (s.begin != expect || s.end < s.begin)
      throw Error("cannot save KV snapshot '" + path + "': segment '" + s.id + "' covers [" + std::to_string(s.begin) + ", " +
                  std::to_string(s.end) + ") but segments must tile the tokens in order from " + std::to_string(expect));
    if (s.id.size() > kMaxString || s.hash.size() > kMaxString)
      throw Error("cannot save KV snapshot '" + path + "': segment id or hash of '" + s.id.substr(0, 64) + "' is over 64 KiB");
    expect = s.end;
  }
  if (!segments.empty() && expect != n)
    throw Error("cannot save KV snapshot '" + path + "': the segments end at token " + std::to_string(expect) + " but the cache holds " +
                std::to_string(n));
  if (model_digest.size() > kMaxString) throw Error("cannot save KV snapshot '" + path + "': model digest is over 64 KiB");

  const model::KvShape& shape = cache.shape();
  Encoder h;
  h.str(model_digest);
  encode_config(h, cache.config());
  h.i32(shape.n_layer);
  h.i32(shape.n_head);
  h.i32(shape.n_head_kv);
  h.i32(shape.head_dim);
  h.f32(shape.kq_scale);
  const std::vector<int32_t> held = cache.evicted_tokens() > 0 ? cache.held_positions() : std::vector<int32_t>{};
  h.i64(n);
  h.i64(held.empty() ? n : static_cast<int64_t>(held.size()));
  h.u32(static_cast<uint32_t>(segments.size()));
  for (int layer = 0; layer < shape.n_layer; ++layer) h.u8(cache.calibrated(layer) ? 1 : 0);
  h.str(cache.codebook_digest());

  Encoder seg;
  for (const Segment& s : segments) {
    seg.str(s.id);
    seg.str(s.hash);
    seg.i64(s.begin);
    seg.i64(s.end);
  }

  SnapshotWriter out(path);
  out.write_header(h.bytes);
  out.begin_section(SectionKind::Tokens, -1, tokens.size() * sizeof(int32_t));
  out.write(tokens.data(), tokens.size() * sizeof(int32_t));
  out.end_section();
  out.begin_section(SectionKind::Positions, -1, held.size() * sizeof(int32_t));
  out.write(held.data(), held.size() * sizeof(int32_t));
  out.end_section();
  // Zero padding to an 8-byte file offset after this section: every later section then starts at an even
  // offset, so keys and values can be served from the mapped file as aligned f16 arrays.
  const uint64_t segments_end = out.bytes_written() + kSectionFraming + seg.bytes.size() + 4;
  for (uint64_t pad = (8 - segments_end % 8) % 8; pad > 0; --pad) seg.u8(0);
  out.begin_section(SectionKind::Segments, -1, seg.bytes.size());
  out.write(seg.bytes.data(), seg.bytes.size());
  out.end_section();
  cache.save(out);
  out.commit();
}

// ---- reading ----

SnapshotReader::SnapshotReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error("cannot open KV snapshot '" + path + "': " + describe_errno(err) +
                (err == ENOENT ? " (no snapshot yet: a prefill will create it)" : ""));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot read KV snapshot '" + path + "': " + describe_errno(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
#ifdef MAP_POPULATE
    // Every byte is read at least once (checksums), so fault the whole file in with one call.
    constexpr int flags = MAP_PRIVATE | MAP_POPULATE;
#else
    constexpr int flags = MAP_PRIVATE;
#endif
    void* m = ::mmap(nullptr, size_, PROT_READ, flags, fd, 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error("cannot map KV snapshot '" + path + "': " + describe_errno(err));
    }
    map_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  info_.file_bytes = size_;

  // Header: framing, length bounded by the file, checksum, then the fields.
  const std::string header = "header";
  if (size_ < kHeaderFraming + 4) damaged(path, header, "the file has only " + std::to_string(size_) + " bytes");
  if (std::memcmp(map_, kMagic, 4) != 0) damaged(path, header, "no HCKV magic: this is not a KV snapshot file");
  const uint32_t version = load_u32(map_ + 4);
  if (version != kSnapshotVersion && version != 5)
    damaged(path, header, "format version " + std::to_string(version) + ", this engine reads versions 5 and " + std::to_string(kSnapshotVersion));
  const uint64_t payload = load_u32(map_ + 8);
  if (payload > size_ - kHeaderFraming - 4)
    damaged(path, header, "its length " + std::to_string(payload) + " runs past the end of the file (" + std::to_string(size_) + " bytes)");
  const size_t header_end = kHeaderFraming + payload;
  if (crc32c(map_, header_end) != load_u32(map_ + header_end)) damaged(path, header, "checksum mismatch");

  Decoder d{map_ + kHeaderFraming, payload, path, header};
  info_.model_digest = d.str();
  info_.config = decode_config(d);
  info_.shape.n_layer = d.i32();
  info_.shape.n_head = d.i32();
  info_.shape.n_head_kv = d.i32();
  info_.shape.head_dim = d.i32();
  info_.shape.kq_scale = d.f32();
  const int64_t n_tokens = d.i64();
  const int64_t n_held = version >= 6 ? d.i64() : n_tokens;
  const uint32_t n_segments = d.u32();
  const model::KvShape& s = info_.shape;
  const HcConfig& c = info_.config;
  // The header checksum already passed; these bounds keep a crafted file from driving huge allocations.
  if (s.n_layer < 1 || s.n_layer > 4096 || s.n_head_kv < 1 || s.n_head_kv > 4096 || s.n_head < s.n_head_kv ||
      s.n_head % s.n_head_kv != 0 || s.head_dim < 1 || s.head_dim > 65536)
    damaged(path, header, "implausible model shape");
  if (c.centroids < 1 || c.centroids > 65536 || c.calibration_tokens < 0)
    damaged(path, header, "implausible kv config");
  // Sizes against the file are checked per section below, so that a truncated file names the cut section.
  if (n_tokens < 0 || n_tokens > std::numeric_limits<int>::max())
    damaged(path, header, "implausible token count " + std::to_string(n_tokens));
  if (n_held < 0 || n_held > n_tokens)
    damaged(path, header, "held count " + std::to_string(n_held) + " is not within the " + std::to_string(n_tokens) + " tokens");
  info_.calibrated.resize(s.n_layer);
  const int groups = key_groups(c.budget, s.head_dim);
  for (int layer = 0; layer < s.n_layer; ++layer) {
    info_.calibrated[layer] = d.u8() != 0;
    if (info_.calibrated[layer] &&
        (groups == 0 || (n_held < c.calibration_tokens && c.codebook_source != CodebookSource::Preset)))
      damaged(path, header, "layer " + std::to_string(layer) + " is marked calibrated but cannot be");
  }
  info_.codebook_digest = d.str();
  if (d.left != 0) damaged(path, header, std::to_string(d.left) + " unexpected bytes at its end");

  // Sections, in their fixed order; each one's framing and payload bounded by the file before use.
  size_t pos = header_end + 4;
  auto next = [&](SectionKind kind, int layer, bool fixed, uint64_t expected) {
    const std::string name = section_name(kind, layer);
    if (size_ - pos < kSectionFraming + 4)
      damaged(path, name, "the file ends at byte " + std::to_string(size_) + ", before this section (truncated file)");
    const uint32_t got_kind = load_u32(map_ + pos);
    const auto got_layer = static_cast<int32_t>(load_u32(map_ + pos + 4));
    const uint64_t len = load_u64(map_ + pos + 8);
    if (got_kind != static_cast<uint32_t>(kind) || got_layer != layer)
      damaged(path, name, "found a section of kind " + std::to_string(got_kind) + " for layer " + std::to_string(got_layer) + " in its place");
    if (len > size_ - pos - kSectionFraming - 4)
      damaged(path, name, "its length " + std::to_string(len) + " runs past the end of the file (truncated file)");
    if (fixed && len != expected)
      damaged(path, name, "length " + std::to_string(len) + " where the header implies " + std::to_string(expected));
    const size_t end = pos + kSectionFraming + static_cast<size_t>(len);
    if (crc32c(map_ + pos, end - pos) != load_u32(map_ + end)) damaged(path, name, "checksum mismatch");
    sections_.push_back({name, kind, layer, pos, end + 4 - pos, map_ + pos + kSectionFraming, len});
    pos = end + 4;
    return sections_.back();
  };

  const uint64_t n = static_cast<uint64_t>(n_tokens);
  const SnapshotSection tokens = next(SectionKind::Tokens, -1, true, mul(n, 4, path));
  info_.tokens.resize(n);
  if (n > 0) std::memcpy(info_.tokens.data(), tokens.data, n * 4);
  if (version >= 6) {
    // Listed only when some were evicted: then every held position, at least one.
    const uint64_t listed = n_held < n_tokens ? static_cast<uint64_t>(n_held) : 0;
    if (n_held < n_tokens && n_held == 0) damaged(path, header, "no position held of " + std::to_string(n_tokens));
    const SnapshotSection held = next(SectionKind::Positions, -1, true, mul(listed, 4, path));
    info_.positions.resize(listed);
    if (listed > 0) std::memcpy(info_.positions.data(), held.data, listed * 4);
    for (uint64_t i = 0; i < listed; ++i)
      if (info_.positions[i] < 0 || info_.positions[i] >= n_tokens || (i > 0 && info_.positions[i] <= info_.positions[i - 1]))
        damaged(path, held.name, "position " + std::to_string(i) + " is not ascending within the tokens");
  }

  const SnapshotSection seg = next(SectionKind::Segments, -1, false, 0);
  Decoder sd{seg.data, static_cast<size_t>(seg.size), path, seg.name};
  int64_t expect = 0;
  for (uint32_t i = 0; i < n_segments; ++i) {
    Segment sg;
    sg.id = sd.str();
    sg.hash = sd.str();
    sg.begin = sd.i64();
    sg.end = sd.i64();
    if (sg.begin != expect || sg.end < sg.begin || sg.end > n_tokens)
      damaged(path, seg.name, "segment " + std::to_string(i) + " does not continue the token ranges");
    expect = sg.end;
    info_.segments.push_back(std::move(sg));
  }
  if (n_segments > 0 && expect != n_tokens) damaged(path, seg.name, "the segments do not reach the last token");
  if (sd.left >= 8) damaged(path, seg.name, std::to_string(sd.left) + " unexpected bytes at its end");
  while (sd.left > 0)
    if (sd.u8() != 0) damaged(path, seg.name, "nonzero padding at its end");

  const uint64_t dim = static_cast<uint64_t>(s.head_dim), g = static_cast<uint64_t>(groups);
  const uint64_t heads = static_cast<uint64_t>(s.n_head_kv);
  // Per head: centroids (g, c, d/g), then the residual radii (g, levels); f32.
  const uint64_t book =
      g > 0 ? mul(mul(g * (dim / g), static_cast<uint64_t>(c.centroids), path) + g * KeyCodebook::kLevels, 4, path) : 0;
  const uint64_t rows = mul(mul(heads, static_cast<uint64_t>(n_held), path), 2, path);  // bytes per u16 column over all heads and held tokens
  engine::Sha256 sha;
  for (int layer = 0; layer < s.n_layer; ++layer) {
    const bool cal = info_.calibrated[layer];
    const SnapshotSection& books = next(SectionKind::Codebooks, layer, true, cal ? mul(heads, book, path) : 0);
    sha.update(books.data, static_cast<size_t>(books.size));
    next(SectionKind::Codes, layer, true, cal ? mul(rows, g, path) : 0);
    next(SectionKind::Keys, layer, true, mul(rows, dim, path));
    next(SectionKind::Values, layer, true, mul(rows, dim, path));
  }
  if (pos != size_) damaged(path, "end of file", std::to_string(size_ - pos) + " bytes after the last section");
  if (sha.hex_digest() != info_.codebook_digest)
    damaged(path, "header", "the codebook digest does not match the codebooks stored");
}

SnapshotReader::~SnapshotReader() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const SnapshotSection& SnapshotReader::section(SectionKind kind, int layer) const {
  // tokens, positions (version 6 on), segments, then four sections per layer in kind order.
  const size_t first_layer = sections_.size() - static_cast<size_t>(info_.shape.n_layer) * 4;
  const size_t i = first_layer + static_cast<size_t>(layer) * 4 + (static_cast<size_t>(kind) - static_cast<size_t>(SectionKind::Codebooks));
  if (layer < 0 || kind < SectionKind::Codebooks || kind > SectionKind::Values || i >= sections_.size())
    throw Error("KV snapshot '" + path_ + "': no section '" + section_name(kind, layer) + "'");
  return sections_[i];
}

// ---- loading ----

int64_t segment_boundary(const std::vector<Segment>& segments, size_t n_segments) {
  if (n_segments > segments.size())
    throw Error("cannot keep " + std::to_string(n_segments) + " segments of a snapshot that has " + std::to_string(segments.size()));
  return n_segments == 0 ? 0 : segments[n_segments - 1].end;
}

namespace {

// Every setting that changes what a prefill stores (the codebooks, the selection that shapes later
// layers' inputs, the shape), as "name: snapshot vs requested" lines.
std::string config_differences(const SnapshotInfo& a, const model::KvShape& s, const HcConfig& c) {
  std::string out;
  auto diff = [&](const char* name, const std::string& x, const std::string& y) {
    if (x != y) out += std::string(out.empty() ? "" : ", ") + name + " " + x + " in the snapshot vs " + y + " now";
  };
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", v);
    return std::string(b);
  };
  diff("kv budget", key_budget_name(a.config.budget), key_budget_name(c.budget));
  diff("centroids", num(a.config.centroids), num(c.centroids));
  diff("top-p", num(a.config.select.top_p), num(c.select.top_p));
  diff("sinks", num(static_cast<double>(a.config.select.sinks)), num(static_cast<double>(c.select.sinks)));
  diff("recent", num(static_cast<double>(a.config.select.recent)), num(static_cast<double>(c.select.recent)));
  diff("k_max", num(static_cast<double>(a.config.select.k_max)), num(static_cast<double>(c.select.k_max)));
  diff("margin", num(a.config.select.margin), num(c.select.margin));
  diff("rescore", a.config.rescore ? "on" : "off", c.rescore ? "on" : "off");
  diff("calibration tokens", num(a.config.calibration_tokens), num(c.calibration_tokens));
  diff("star block", num(a.config.star_block), num(c.star_block));
  diff("seed", std::to_string(a.config.seed), std::to_string(c.seed));
  auto source = [](CodebookSource s) { return std::string(s == CodebookSource::Preset ? "built-in" : "workspace"); };
  diff("codebooks", source(a.config.codebook_source), source(c.codebook_source));
  diff("bound scale", num(a.config.bound_scale), num(c.bound_scale));
  diff("GQA-shared selection", a.config.gqa_shared ? "on" : "off", c.gqa_shared ? "on" : "off");
  diff("layers", num(a.shape.n_layer), num(s.n_layer));
  diff("heads", num(a.shape.n_head), num(s.n_head));
  diff("kv heads", num(a.shape.n_head_kv), num(s.n_head_kv));
  diff("head dim", num(a.shape.head_dim), num(s.head_dim));
  diff("kq scale", num(a.shape.kq_scale), num(s.kq_scale));
  return out;
}

}  // namespace

LoadedSnapshot load_snapshot(const std::string& path, const std::string& model_digest, const model::KvShape& shape,
                             const HcConfig& config, int capacity, int64_t keep_tokens, bool map_values) {
  SnapshotReader in(path);
  const SnapshotInfo& info = in.info();
  if (info.model_digest != model_digest)
    throw Error("KV snapshot '" + path + "' was made for model " + info.model_digest + ", not the loaded model " + model_digest +
                "; it cannot be reused: delete it (the next prefill rebuilds it) or load that model");
  const std::string diff = config_differences(info, shape, config);
  if (!diff.empty())
    throw Error("KV snapshot '" + path + "' was made with other KV settings (" + diff +
                "); it cannot be reused: delete it (the next prefill rebuilds it) or use the same settings");
  const int64_t n = static_cast<int64_t>(info.tokens.size());
  if (keep_tokens < 0) keep_tokens = n;
  bool boundary = keep_tokens == 0 || keep_tokens == n;
  for (const Segment& s : info.segments) boundary = boundary || s.end == keep_tokens;
  if (!boundary || keep_tokens > n)
    throw Error("cannot keep " + std::to_string(keep_tokens) + " tokens of KV snapshot '" + path + "' (" + std::to_string(n) +
                " tokens): keep 0, all of them, or the end of a segment (segment_boundary())");

  LoadedSnapshot out;
  out.cache = make_hc_kv_cache_from_snapshot(in, capacity, keep_tokens, map_values, &config);
  out.info = info;
  out.info.tokens.resize(static_cast<size_t>(keep_tokens));
  while (!out.info.segments.empty() && out.info.segments.back().end > keep_tokens) out.info.segments.pop_back();
  return out;
}

}  // namespace hcattn::kv
