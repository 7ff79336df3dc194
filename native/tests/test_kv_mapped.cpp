// Keys and values served straight from a mapped KV snapshot (load_snapshot with map_values):
//   - a mapped load attends exactly as a copying load, for the saved positions and for new ones stored
//     after them (which go to RAM), at every budget;
//   - forks of a mapped cache map the same file; truncating to a segment boundary and continuing equals
//     a fresh fill; the file may be deleted or replaced by a new save while the cache lives;
//   - the tiers report the mapped bytes apart from RAM.
// Prints, for a 120k-token cache, load time and anonymous RSS growth with and without mapping, and the
// snapshot's bytes per token per section.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "kv/hc_cache.h"
#include "kv/snapshot.h"
#include "kv_test_util.h"
#include "test_util.h"

using namespace hcattn;
using hcattn_test::bit_equal;
using hcattn_test::fill;

namespace {

model::KvShape shape() {
  return hcattn_test::kv_shape(2, 4, 2, 64);
}

struct Data {
  model::KvShape s = shape();
  int n;
  std::vector<float> k, v, q;
  explicit Data(int n_tokens) : n(n_tokens) {
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    k.resize(static_cast<size_t>(n) * s.n_head_kv * s.head_dim);
    v.resize(k.size());
    q.resize(static_cast<size_t>(n) * s.n_head * s.head_dim);
    for (auto* a : {&k, &v, &q})
      for (float& x : *a) x = nd(rng);
  }
};

kv::HcConfig config(kv::KeyBudget budget) {
  kv::HcConfig cfg;
  cfg.budget = budget;
  cfg.calibration_tokens = 500;
  cfg.select.recent = 32;
  return cfg;
}

// Anonymous resident memory of this process (RssAnon), bytes.
long rss_anon() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::atol(line.c_str() + 8) * 1024;
  return -1;
}

const std::string kDigest = "sha256:mapped";

void test_equivalence(const std::string& dir, cpu::ThreadPool& pool) {
  const Data d(1600);
  const std::vector<kv::Segment> segs = {{"a", "h0", 0, 300}, {"b", "h1", 300, 900}, {"c", "h2", 900, 1200}};
  for (auto budget : {kv::KeyBudget::Half, kv::KeyBudget::Quarter, kv::KeyBudget::Eighth}) {
    const kv::HcConfig cfg = config(budget);
    auto fresh = kv::make_hc_kv_cache(d.s, d.n, cfg);
    fill(*fresh, d, 0, 1200, 100, pool);
    const std::string path = dir + "/mapped.hckv";
    kv::save_snapshot(path, *fresh, kDigest, std::vector<int32_t>(1200, 7), segs);

    auto copied = kv::load_snapshot(path, kDigest, d.s, cfg, d.n, -1, false).cache;
    auto mapped = kv::load_snapshot(path, kDigest, d.s, cfg, d.n, -1, true).cache;
    const size_t kv_bytes = 2ull * 1200 * d.s.head_dim * 2 * d.s.n_layer * d.s.n_head_kv;  // keys + values, f16
    CHECK(copied->mapped_bytes() == 0);
    CHECK(mapped->mapped_bytes() == kv_bytes);
    CHECK(copied->bytes().host + copied->bytes().fast >= mapped->bytes().host + mapped->bytes().fast + kv_bytes / 2);

    // A fork of the mapped cache, made before anything is appended, maps the same file.
    auto fork = mapped->clone_prefix(1200);
    // Deleting the file does not disturb the mappings (they keep the old inode).
    ::unlink(path.c_str());
    const auto a = fill(*copied, d, 1200, 1600, 50, pool);
    const auto b = fill(*mapped, d, 1200, 1600, 50, pool);
    const auto c = fill(*fork, d, 1200, 1600, 50, pool);
    CHECK(bit_equal(a, b));
    CHECK(bit_equal(a, c));

    // Truncate a mapped load to a segment boundary and continue = a fresh fill.
    kv::save_snapshot(path, *fresh, kDigest, std::vector<int32_t>(1200, 7), segs);
    auto cut = kv::load_snapshot(path, kDigest, d.s, cfg, d.n, 900, true).cache;
    auto whole = kv::load_snapshot(path, kDigest, d.s, cfg, d.n, -1, true).cache;
    whole->truncate(300);
    // Replacing the file by a new save (rename) while caches map it is safe too.
    kv::save_snapshot(path, *fresh, kDigest, std::vector<int32_t>(1200, 7), segs);
    auto ref = kv::make_hc_kv_cache(d.s, d.n, cfg);
    const auto r1 = fill(*ref, d, 0, 1600, 100, pool);
    const auto x = fill(*cut, d, 900, 1600, 100, pool);
    const auto y = fill(*whole, d, 300, 1600, 100, pool);
    // The fresh fill's outputs for positions [900, 1600) and [300, 1600): the tail of r1 (all layers per chunk).
    const size_t per_token = static_cast<size_t>(d.s.n_layer) * d.s.n_head * d.s.head_dim;
    CHECK(bit_equal(x, std::vector<float>(r1.end() - 700 * per_token, r1.end())));
    CHECK(bit_equal(y, std::vector<float>(r1.end() - 1300 * per_token, r1.end())));
    std::printf("budget %-5s: mapped load = copied load, fork and truncate+continue = fresh fill (mapped %zu bytes)\n",
                kv::key_budget_name(budget), mapped->mapped_bytes());
  }
}

void measure(const std::string& dir) {
  const int n = 120000;
  const Data d(n);
  const kv::HcConfig cfg = config(kv::KeyBudget::Quarter);
  std::string path = dir + "/big.hckv";
  {
    auto cache = kv::make_hc_kv_cache(d.s, n, cfg);
    for (int layer = 0; layer < d.s.n_layer; ++layer) cache->store(layer, 0, n, d.k.data(), d.v.data());
    kv::save_snapshot(path, *cache, kDigest, std::vector<int32_t>(n, 1), {});
    kv::SnapshotReader in(path);
    std::printf("snapshot of %d tokens (2 layers, 2 kv heads, d 64, 25%%): %.1f bytes/token:", n,
                static_cast<double>(in.info().file_bytes) / n);
    double per[7] = {0};
    for (const kv::SnapshotSection& s : in.sections()) per[static_cast<int>(s.kind)] += static_cast<double>(s.bytes) / n;
    const char* names[7] = {"", "tokens", "segments", "codebooks", "codes", "keys", "values"};
    for (int k = 1; k < 7; ++k) std::printf(" %s %.2f", names[k], per[k]);
    std::printf(" (f16 K+V: %d)\n", 2 * 2 * d.s.head_dim * d.s.n_layer * d.s.n_head_kv);
  }
  for (bool map : {false, true}) {
    const long before = rss_anon();
    const auto t0 = std::chrono::steady_clock::now();
    auto loaded = kv::load_snapshot(path, kDigest, d.s, cfg, n + 16, -1, map).cache;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const long grown = rss_anon() - before;
    std::printf("load of %d tokens %s: %.1f ms, anonymous RSS +%.1f MB (host tier in RAM %.1f MB, mapped %.1f MB)\n", n,
                map ? "mapped" : "copied", 1000 * s, grown / 1e6, loaded->bytes().host / 1e6, loaded->mapped_bytes() / 1e6);
    if (map) CHECK(loaded->mapped_bytes() > loaded->bytes().host);
  }
}

}  // namespace

int main() {
  cpu::ThreadPool pool(2);
  char tmpl[] = "/tmp/hcattn-mapped-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  test_equivalence(dir, pool);
  measure(dir);
  std::system(("rm -rf " + dir).c_str());
  return test_summary("kv_mapped");
}
