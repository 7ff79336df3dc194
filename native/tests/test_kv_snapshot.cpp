// KV snapshot files: CRC32C paths agree; save -> load gives bit-identical attention; truncation to a
// segment boundary and continuing equals a fresh fill; every truncation and bit flip (of a context that
// evicted tokens under a value cap, so every section has a payload) is refused naming the damaged section;
// version 5 files are still read; other models and settings are refused; writes are atomic. Prints snapshot bytes
// per token at each budget, save MB/s and load time for a 100k-token cache.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kv/checksum.h"
#include "kv/hc_cache.h"
#include "kv/snapshot.h"
#include "kv_test_util.h"
#include "test_util.h"

using namespace hcattn;
using hcattn_test::bit_equal;
using hcattn_test::error_of;
using hcattn_test::fill;

namespace {

model::KvShape small_shape() {
  return hcattn_test::kv_shape(2, 4, 2, 16);
}

std::vector<float> random_rows(size_t n, int width, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n * width);
  for (auto& x : v) x = nd(rng);
  return v;
}

struct Data {
  model::KvShape s = small_shape();
  int n = 2000;
  std::vector<float> k, v, q;
  std::vector<int32_t> tokens;
  Data() : k(random_rows(n, s.n_head_kv * s.head_dim, 1)), v(random_rows(n, s.n_head_kv * s.head_dim, 2)),
           q(random_rows(n, s.n_head * s.head_dim, 3)) {
    std::mt19937 rng(4);
    for (int i = 0; i < n; ++i) tokens.push_back(static_cast<int32_t>(rng() % 128256));
  }
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

kv::HcConfig config(kv::KeyBudget budget) {
  kv::HcConfig cfg;
  cfg.budget = budget;
  cfg.calibration_tokens = 1000;
  cfg.select.recent = 32;
  return cfg;
}

// Segments at 250, 750, 1250 and 1500: boundaries on both sides of the calibration point (1000).
std::vector<kv::Segment> segments() {
  return {{"system", "h0", 0, 250}, {"src/a.ts", "h1", 250, 750}, {"src/b.ts", "h2", 750, 1250}, {"question", "h3", 1250, 1500}};
}

const std::string kDigest = "sha256:0f1e2d";

void test_checksum() {
  const char* nine = "123456789";
  CHECK(kv::crc32c_portable(nine, 9) == 0xE3069283u);  // the standard CRC32C check value
  CHECK(kv::crc32c(nine, 9) == 0xE3069283u);
  CHECK(kv::crc32c(nine + 4, 5, kv::crc32c(nine, 4)) == 0xE3069283u);
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(4096);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  int agree = 0;
  for (int i = 0; i < 300; ++i) {
    const size_t off = rng() % 64, len = rng() % (buf.size() - 64);
    agree += kv::crc32c_portable(&buf[off], len, i) == kv::crc32c(&buf[off], len, i);
  }
  CHECK(agree == 300);
  std::printf("crc32c: check value ok, run-time path agrees with the table path on 300 random spans\n");
}

// Save -> load -> the same outputs, bit for bit, for everything stored and attended afterwards.
void test_round_trip(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  for (auto budget : {kv::KeyBudget::Half, kv::KeyBudget::Quarter, kv::KeyBudget::Eighth}) {
    const kv::HcConfig cfg = config(budget);
    auto a = kv::make_hc_kv_cache(d.s, d.n, cfg);
    fill(*a, d, 0, 1500, 250, pool);
    const std::string path = dir + "/round.hckv";
    const std::vector<int32_t> toks(d.tokens.begin(), d.tokens.begin() + 1500);
    kv::save_snapshot(path, *a, kDigest, toks, segments());
    kv::LoadedSnapshot b = kv::load_snapshot(path, kDigest, d.s, cfg, d.n);
    CHECK(b.info.tokens == toks);
    CHECK(b.info.segments.size() == 4 && b.info.segments[2].id == "src/b.ts" && b.info.segments[2].hash == "h2" &&
          b.info.segments[2].begin == 750 && b.info.segments[2].end == 1250);
    CHECK(b.cache->stored_tokens() == 1500);
    CHECK(b.info.codebook_digest == a->codebook_digest());
    CHECK(b.cache->calibrated(1) == (budget != kv::KeyBudget::Half));
    // A prefill chunk, then decode steps, on both caches.
    const auto x = fill(*a, d, 1500, 1750, 250, pool), y = fill(*b.cache, d, 1500, 1750, 250, pool);
    const auto x2 = fill(*a, d, 1750, 1800, 1, pool), y2 = fill(*b.cache, d, 1750, 1800, 1, pool);
    CHECK(bit_equal(x, y));
    CHECK(bit_equal(x2, y2));
    std::printf("budget %-5s: save -> load -> 250 prefill + 50 decode positions bit-identical: %s\n", kv::key_budget_name(budget),
                bit_equal(x, y) && bit_equal(x2, y2) ? "yes" : "NO");
  }
}

// Truncating a loaded snapshot to a segment boundary and continuing equals a fresh fill, bit for bit.
void test_truncate_to_segment(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  const kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  auto fresh = kv::make_hc_kv_cache(d.s, d.n, cfg);
  const auto ref = fill(*fresh, d, 0, d.n, 250, pool);
  const size_t per_chunk = static_cast<size_t>(250) * d.s.n_head * d.s.head_dim * d.s.n_layer;

  auto first = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*first, d, 0, 1500, 250, pool);
  const std::string path = dir + "/trunc.hckv";
  kv::save_snapshot(path, *first, kDigest, std::vector<int32_t>(d.tokens.begin(), d.tokens.begin() + 1500), segments());

  for (size_t keep_segments : {3u, 2u, 0u}) {
    const int64_t keep = kv::segment_boundary(segments(), keep_segments);
    kv::LoadedSnapshot l = kv::load_snapshot(path, kDigest, d.s, cfg, d.n, keep);
    CHECK(l.cache->stored_tokens() == keep && static_cast<int64_t>(l.info.tokens.size()) == keep);
    CHECK(l.info.segments.size() == keep_segments);
    // Below the calibration point the codebooks are dropped, as a fresh prefill of `keep` tokens has none.
    CHECK(l.cache->calibrated(0) == (keep >= cfg.calibration_tokens));
    const auto got = fill(*l.cache, d, static_cast<int>(keep), d.n, 250, pool);
    const std::vector<float> want(ref.begin() + static_cast<int64_t>(keep / 250 * per_chunk), ref.end());
    CHECK(bit_equal(got, want));
    std::printf("keep %zu segments (%lld tokens) + continue to %d = fresh fill, bit for bit: %s\n", keep_segments,
                static_cast<long long>(keep), d.n, bit_equal(got, want) ? "yes" : "NO");
  }
  const std::string e = error_of([&] { kv::load_snapshot(path, kDigest, d.s, cfg, d.n, 1000); });
  CHECK(contains(e, "end of a segment"));
}

void test_refusals(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  const kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  auto a = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*a, d, 0, 500, 250, pool);
  const std::string path = dir + "/refuse.hckv";
  kv::save_snapshot(path, *a, kDigest, std::vector<int32_t>(d.tokens.begin(), d.tokens.begin() + 500), {});

  const std::string model = error_of([&] { kv::load_snapshot(path, "sha256:other", d.s, cfg, d.n); });
  CHECK(contains(model, "was made for model " + kDigest) && contains(model, "sha256:other"));
  kv::HcConfig other = cfg;
  other.centroids = 128;
  other.budget = kv::KeyBudget::Eighth;
  const std::string settings = error_of([&] { kv::load_snapshot(path, kDigest, d.s, other, d.n); });
  CHECK(contains(settings, "centroids 256 in the snapshot vs 128 now") && contains(settings, "kv budget 25%"));
  model::KvShape shape = d.s;
  shape.n_layer = 3;
  CHECK(contains(error_of([&] { kv::load_snapshot(path, kDigest, shape, cfg, d.n); }), "layers 2 in the snapshot vs 3 now"));
  CHECK(contains(error_of([&] { kv::load_snapshot(path, kDigest, d.s, cfg, 400); }), "larger nCtx"));
  CHECK(contains(error_of([&] { kv::load_snapshot(dir + "/missing.hckv", kDigest, d.s, cfg, d.n); }), "no snapshot yet"));
  CHECK(contains(error_of([&] { kv::save_snapshot(path, *a, kDigest, {1, 2, 3}, {}); }), "3 token ids given for a cache of 500"));
  std::printf("refused: other model (\"%s\"), other settings (\"%s\")\n", model.c_str(), settings.c_str());
}

// The section a damaged byte at `offset` belongs to ("header" before the first section).
std::string section_at(const std::vector<kv::SnapshotSection>& sections, uint64_t offset) {
  for (const auto& s : sections)
    if (offset >= s.offset && offset < s.offset + s.bytes) return s.name;
  return "header";
}

void test_damage(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  // Under a value cap, so that the positions section has a payload to damage too.
  kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  cfg.value_cap = 1200;
  auto a = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*a, d, 0, 1500, 250, pool);
  const std::string path = dir + "/good.hckv";
  kv::save_snapshot(path, *a, kDigest, std::vector<int32_t>(d.tokens.begin(), d.tokens.begin() + 1500), segments());
  const std::vector<uint8_t> good = read_bytes(path);
  std::vector<kv::SnapshotSection> sections;
  {
    kv::SnapshotReader r(path);
    for (auto s : r.sections()) {
      s.data = nullptr;  // the mapping goes away with the reader
      sections.push_back(s);
    }
  }
  CHECK(sections.size() == 3 + 4 * static_cast<size_t>(d.s.n_layer));
  CHECK(sections[1].kind == kv::SectionKind::Positions && sections[1].size == 4 * (1500 - static_cast<uint64_t>(a->evicted_tokens())) &&
        a->evicted_tokens() > 0);
  CHECK(sections.back().offset + sections.back().bytes == good.size());

  // Truncation at 1000 random offsets, longest first so that the file can be cut in place.
  std::mt19937_64 rng(11);
  std::vector<uint64_t> cuts(1000);
  for (auto& c : cuts) c = rng() % good.size();
  cuts[0] = 0;
  std::sort(cuts.rbegin(), cuts.rend());
  const std::string cut_path = dir + "/cut.hckv";
  write_bytes(cut_path, good);
  int named = 0;
  for (uint64_t c : cuts) {
    CHECK(::truncate(cut_path.c_str(), static_cast<off_t>(c)) == 0);
    const std::string e = error_of([&] { kv::load_snapshot(cut_path, kDigest, d.s, cfg, d.n); });
    // A cut at a section's first byte leaves that section missing, so it is the one named.
    const std::string expect = "damaged in section '" + section_at(sections, c) + "'";
    if (contains(e, expect)) {
      ++named;
    } else {
      std::fprintf(stderr, "cut at %llu: expected \"%s\", got \"%s\"\n", static_cast<unsigned long long>(c), expect.c_str(), e.c_str());
    }
  }
  CHECK(named == 1000);
  std::printf("truncation at 1000 random offsets of a %zu-byte file: %d refused naming the cut section\n", good.size(), named);

  // Bit flips: 25 in each section's payload and 25 in its framing (kind, layer, length, checksum), and 50 in the header.
  int flips = 0, caught = 0;
  const std::string flip_path = dir + "/flip.hckv";
  auto flip_at = [&](uint64_t offset, const std::string& name) {
    std::vector<uint8_t> bad = good;
    bad[offset] ^= static_cast<uint8_t>(1u << (rng() % 8));
    write_bytes(flip_path, bad);
    const std::string e = error_of([&] { kv::load_snapshot(flip_path, kDigest, d.s, cfg, d.n); });
    ++flips;
    if (contains(e, "damaged in section '" + name + "'")) {
      ++caught;
    } else {
      std::fprintf(stderr, "flip at %llu in %s: got \"%s\"\n", static_cast<unsigned long long>(offset), name.c_str(), e.c_str());
    }
  };
  for (int i = 0; i < 50; ++i) flip_at(rng() % sections[0].offset, "header");
  for (const auto& s : sections) {
    const uint64_t payload = s.bytes - 20;
    for (int i = 0; i < 25; ++i) {
      if (payload > 0) flip_at(s.offset + 16 + rng() % payload, s.name);
      const uint64_t f = rng() % 20;  // 16 framing bytes before the payload, 4 checksum bytes after it
      flip_at(f < 16 ? s.offset + f : s.offset + 16 + payload + (f - 16), s.name);
    }
  }
  CHECK(flips == caught);
  std::printf("bit flips: %d of %d detected naming their section (header + %zu sections)\n", caught, flips, sections.size());

  // Held positions out of order under a valid checksum (a crafted file): refused all the same.
  std::vector<uint8_t> crafted = good;
  const kv::SnapshotSection& held = sections[1];
  std::swap_ranges(crafted.begin() + static_cast<ptrdiff_t>(held.offset + 16), crafted.begin() + static_cast<ptrdiff_t>(held.offset + 20),
                   crafted.begin() + static_cast<ptrdiff_t>(held.offset + 24));
  const size_t end = held.offset + held.bytes - 4;
  const uint32_t crc = kv::crc32c(&crafted[held.offset], end - held.offset);
  for (int i = 0; i < 4; ++i) crafted[end + i] = static_cast<uint8_t>(crc >> (8 * i));
  write_bytes(flip_path, crafted);
  const std::string unordered = error_of([&] { kv::load_snapshot(flip_path, kDigest, d.s, cfg, d.n); });
  std::printf("held positions out of order: %s\n", unordered.c_str());
  CHECK(contains(unordered, "damaged in section 'positions'") && contains(unordered, "not ascending"));
}

// Version 5 files (no held count, no positions section) are still read, every position held: one is made
// from a version 6 file of a context that evicted nothing, and loads to the same attention, bit for bit.
void test_version5(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  const kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  auto a = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*a, d, 0, 1500, 250, pool);
  const std::string path = dir + "/v6.hckv", old_path = dir + "/v5.hckv";
  kv::save_snapshot(path, *a, kDigest, std::vector<int32_t>(d.tokens.begin(), d.tokens.begin() + 1500), segments());
  uint64_t positions_offset = 0, positions_bytes = 0;
  {
    kv::SnapshotReader r(path);
    positions_offset = r.sections()[1].offset;
    positions_bytes = r.sections()[1].bytes;
  }
  std::vector<uint8_t> b = read_bytes(path);
  auto u32_at = [&](size_t at) { return static_cast<uint32_t>(b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<uint32_t>(b[at + 3]) << 24); };
  auto put_u32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  // In the header payload the token count is followed by the held count (equal here), then the 4 segments.
  std::vector<uint8_t> pattern;
  for (uint64_t v : {uint64_t{1500}, uint64_t{1500}})
    for (int i = 0; i < 8; ++i) pattern.push_back(static_cast<uint8_t>(v >> (8 * i)));
  for (uint8_t x : {4, 0, 0, 0}) pattern.push_back(x);
  const uint32_t payload = u32_at(8);
  const auto at = std::search(b.begin() + 12, b.begin() + 12 + payload, pattern.begin(), pattern.end());
  CHECK(at != b.begin() + 12 + payload);
  b.erase(at + 8, at + 16);
  b.erase(b.begin() + static_cast<ptrdiff_t>(positions_offset - 8), b.begin() + static_cast<ptrdiff_t>(positions_offset - 8 + positions_bytes));
  put_u32(4, 5);
  put_u32(8, payload - 8);
  put_u32(12 + payload - 8, kv::crc32c(b.data(), 12 + payload - 8));
  write_bytes(old_path, b);
  kv::LoadedSnapshot v5 = kv::load_snapshot(old_path, kDigest, d.s, cfg, d.n);
  kv::LoadedSnapshot v6 = kv::load_snapshot(path, kDigest, d.s, cfg, d.n);
  CHECK(v5.cache->stored_tokens() == 1500 && v5.cache->evicted_tokens() == 0 && v5.info.segments.size() == 4);
  const auto x = fill(*v6.cache, d, 1500, 1750, 250, pool), y = fill(*v5.cache, d, 1500, 1750, 250, pool);
  CHECK(bit_equal(x, y));
  std::printf("a version 5 file loads like the version 6 one, bit for bit: %s\n", bit_equal(x, y) ? "yes" : "NO");
}

void test_atomic_write(const Data& d, const std::string& dir, cpu::ThreadPool& pool) {
  const kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  auto small = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*small, d, 0, 250, 250, pool);
  auto big = kv::make_hc_kv_cache(d.s, d.n, cfg);
  fill(*big, d, 0, 1500, 250, pool);
  const std::vector<int32_t> toks250(d.tokens.begin(), d.tokens.begin() + 250), toks1500(d.tokens.begin(), d.tokens.begin() + 1500);
  const std::string path = dir + "/atomic.hckv";
  const std::string own_tmp = path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));

  // A stale temp file of a crashed writer (another pid) and one of ours: neither confuses a save or a load.
  write_bytes(path + ".tmp-99999999", std::vector<uint8_t>(1000, 0xAB));
  write_bytes(own_tmp, std::vector<uint8_t>(5000, 0xCD));
  kv::save_snapshot(path, *small, kDigest, toks250, {});
  CHECK(!exists(own_tmp));
  CHECK(kv::load_snapshot(path, kDigest, d.s, cfg, d.n).info.tokens == toks250);
  const std::vector<uint8_t> before = read_bytes(path);

  // A directory that does not exist.
  const std::string e1 = error_of([&] { kv::save_snapshot(dir + "/no/such/dir/x.hckv", *small, kDigest, toks250, {}); });
  CHECK(contains(e1, dir + "/no/such/dir/x.hckv") && contains(e1, "No such file or directory") && contains(e1, "choose another"));

  // A write that fails half way (file size limit, the same path as a full disk): the old file stays.
  struct rlimit old_limit;
  CHECK(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  struct rlimit low = old_limit;
  low.rlim_cur = 64 * 1024;
  ::signal(SIGXFSZ, SIG_IGN);
  CHECK(::setrlimit(RLIMIT_FSIZE, &low) == 0);
  const std::string e2 = error_of([&] { kv::save_snapshot(path, *big, kDigest, toks1500, segments()); });
  CHECK(::setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  CHECK(contains(e2, "free disk space") && contains(e2, path));
  CHECK(read_bytes(path) == before);
  CHECK(!exists(own_tmp));
  std::printf("failed write: \"%s\"\n", e2.c_str());

  // A read-only directory (root ignores the permission, so only checked for other users).
  const std::string ro = dir + "/ro";
  ::mkdir(ro.c_str(), 0755);
  kv::save_snapshot(ro + "/x.hckv", *small, kDigest, toks250, {});
  const std::vector<uint8_t> ro_before = read_bytes(ro + "/x.hckv");
  ::chmod(ro.c_str(), 0555);
  if (::geteuid() != 0) {
    const std::string e3 = error_of([&] { kv::save_snapshot(ro + "/x.hckv", *big, kDigest, toks1500, segments()); });
    CHECK(contains(e3, "Permission denied") && read_bytes(ro + "/x.hckv") == ro_before);
  } else {
    std::printf("read-only directory case skipped: running as root\n");
  }
  ::chmod(ro.c_str(), 0755);

  // Replacing works, and the stale temp file of another process is still ignored by the load.
  kv::save_snapshot(path, *big, kDigest, toks1500, segments());
  CHECK(kv::load_snapshot(path, kDigest, d.s, cfg, d.n).info.tokens == toks1500);
  CHECK(exists(path + ".tmp-99999999"));
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Snapshot bytes per token at each budget, save throughput and load time for a 100k-token cache.
void measure(const std::string& dir) {
  const model::KvShape s = hcattn_test::kv_shape(2, 8, 2, 64);
  const int n = 100000;
  const auto k = random_rows(n, s.n_head_kv * s.head_dim, 21);
  const auto v = random_rows(n, s.n_head_kv * s.head_dim, 22);
  const std::vector<int32_t> toks(n, 7);
  const double f16 = 2.0 * 2 * s.head_dim * s.n_head_kv * s.n_layer;
  for (auto budget : {kv::KeyBudget::Half, kv::KeyBudget::Quarter, kv::KeyBudget::Eighth}) {
    kv::HcConfig cfg;
    cfg.budget = budget;
    cfg.centroids = 64;  // keeps the 100k-token encode short; the file holds c * d floats per head on top
    auto cache = kv::make_hc_kv_cache(s, n, cfg);
    for (int layer = 0; layer < s.n_layer; ++layer) cache->store(layer, 0, n, k.data(), v.data());
    const std::string path = dir + "/bench.hckv";
    auto t0 = std::chrono::steady_clock::now();
    kv::save_snapshot(path, *cache, kDigest, toks, {{"all", "h", 0, n}});
    const double save_s = seconds_since(t0);
    // The file's sections by tier: codebooks and codes are the fast tier, keys too at 50%; values (and
    // keys kept for re-scoring) the host tier.
    double fast = 0, host = 0;
    t0 = std::chrono::steady_clock::now();
    {
      kv::SnapshotReader r(path);
      for (const auto& sec : r.sections()) {
        const bool is_fast = sec.kind == kv::SectionKind::Codebooks || sec.kind == kv::SectionKind::Codes ||
                             (sec.kind == kv::SectionKind::Keys && budget == kv::KeyBudget::Half);
        if (sec.layer >= 0) (is_fast ? fast : host) += static_cast<double>(sec.size);
      }
    }
    const double validate_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    kv::LoadedSnapshot l = kv::load_snapshot(path, kDigest, s, cfg, n);
    const double load_s = seconds_since(t0);
    const double bytes = static_cast<double>(l.info.file_bytes);
    CHECK(l.cache->stored_tokens() == n);
    CHECK(fast + host < bytes && bytes - fast - host < 4.5 * n + 4096);  // the rest: token ids and framing
    std::printf("budget %-5s 100k tokens (2 layers, 2 kv heads, d 64): file %.1f bytes/token = %.2fx f16 K+V (fast tier %.1f, "
                "host tier %.1f, tokens+framing %.1f); save %.0f MB/s; load %.1f ms (map + validate %.1f ms)\n",
                kv::key_budget_name(budget), bytes / n, bytes / n / f16, fast / n, host / n, (bytes - fast - host) / n,
                bytes / save_s / 1e6, load_s * 1e3, validate_s * 1e3);
  }
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/hckv-test-XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  if (!made) {
    std::fprintf(stderr, "cannot create a temp directory\n");
    return 1;
  }
  const std::string dir = made;
  cpu::ThreadPool pool(2);
  const Data d;
  test_checksum();
  test_round_trip(d, dir, pool);
  test_truncate_to_segment(d, dir, pool);
  test_refusals(d, dir, pool);
  test_damage(d, dir, pool);
  test_version5(d, dir, pool);
  test_atomic_write(d, dir, pool);
  measure(dir);
  const std::string cleanup = "rm -rf '" + dir + "'";
  if (std::system(cleanup.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
  return test_summary("kv_snapshot");
}
