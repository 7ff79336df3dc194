// Built-in KV codebooks (KvOptions::codebooks = "builtin") on real weights (stories260K):
//   - creating a context does not train; its first prefill trains them once and writes the cache file; a
//     new model instance reads it back and its contexts give bit-identical logits;
//   - a damaged cache file is trained again and replaced;
//   - the cache is a function of the token prefix alone: a context truncated below calibration_tokens and
//     prefilled again equals a fresh prefill (no codebook is retrained);
//   - a snapshot records its codebooks: it reloads with identical logits, and a snapshot holding other
//     codebooks (same settings) is refused with a message that says so.
// Prints top-1 agreement with the full cache and creation times for built-in vs workspace codebooks.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/sha256.h"
#include "hcattn/engine.h"
#include "kv/checksum.h"
#include "kv_test_util.h"
#include "test_util.h"

namespace {

using hcattn::Token;
using hcattn_test::sample_tokens;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_all(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

uint32_t u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Changes one codebook value of a snapshot and repairs every checksum and the codebook digest, so that
// the file is valid but holds other codebooks than it was saved with.
void swap_in_other_codebooks(const std::string& path) {
  std::vector<uint8_t> f = read_all(path);
  const size_t header_len = u32(&f[8]), header_end = 12 + header_len;
  size_t pos = header_end + 4;
  hcattn::engine::Sha256 sha;
  bool changed = false;
  while (pos < f.size()) {
    const uint32_t kind = u32(&f[pos]);
    const uint64_t len = u64(&f[pos + 8]);
    uint8_t* payload = &f[pos + 16];
    if (kind == 3 && len > 0) {  // a codebooks section
      if (!changed) {
        float x;
        std::memcpy(&x, payload, 4);
        x += 0.25f;
        std::memcpy(payload, &x, 4);
        changed = true;
      }
      put32(payload + len, hcattn::kv::crc32c(&f[pos], 16 + len));
    }
    if (kind == 3) sha.update(payload, len);
    pos += 16 + len + 4;
  }
  // The digest is the header payload's last string: 64 hex characters at its end.
  const std::string digest = sha.hex_digest();
  std::memcpy(&f[header_end - 64], digest.data(), 64);
  put32(&f[header_end], hcattn::kv::crc32c(f.data(), header_end));
  write_all(path, f);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> files;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') files.push_back(e->d_name);
    ::closedir(d);
  }
  return files;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int argmax(const std::vector<float>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

}  // namespace

int main() {
  const std::string path = hcattn_test::fixture_or_skip("stories260K.gguf");
  if (path.empty()) return 77;
  char tmpl[] = "/tmp/hcattn-codebooks-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);

  auto model = hcattn::Model::load(path, {2});
  const std::vector<Token> seq = sample_tokens(*model, 512, 11);

  hcattn::ContextOptions co;
  co.n_ctx = 520;
  co.n_batch = 64;
  co.kv.mode = "25%";
  co.kv.codebooks = "builtin";
  co.kv.calibration_tokens = 256;
  co.kv.recent = 16;
  co.codebook_cache_dir = dir;

  auto logits_after = [&](hcattn::Model& m, const std::vector<Token>& tokens) {
    auto ctx = m.create_context(co);
    ctx->prefill(tokens);
    return ctx->logits();
  };

  // Creating a context does not train (the addon creates contexts on the JavaScript thread); the first
  // prefill trains and writes one cache file; a new model instance reads it.
  model->create_context(co);
  CHECK(list_dir(dir).empty());
  auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> trained = logits_after(*model, seq);
  const double first_s = seconds_since(t0);
  const std::vector<std::string> files = list_dir(dir);
  std::string cache_file;
  CHECK(files.size() == 1);
  if (!files.empty()) cache_file = dir + "/" + files[0];
  CHECK(cache_file.find("/codebooks-") != std::string::npos);
  const std::vector<uint8_t> original = read_all(cache_file);

  auto model2 = hcattn::Model::load(path, {2});
  t0 = std::chrono::steady_clock::now();
  const std::vector<float> from_disk = logits_after(*model2, seq);
  const double disk_s = seconds_since(t0);
  CHECK(from_disk == trained);
  std::printf("built-in codebooks: first context (prefill + train + write) %.3f s, new model reading the cache %.3f s (%zu bytes)\n",
              first_s, disk_s, original.size());

  // A damaged cache file is trained again and replaced by an identical one.
  {
    std::vector<uint8_t> bad = original;
    bad[bad.size() / 2] ^= 0x10;
    write_all(cache_file, bad);
    auto model3 = hcattn::Model::load(path, {2});
    CHECK(logits_after(*model3, seq) == trained);
    CHECK(read_all(cache_file) == original);
  }

  // Truncating below calibration_tokens keeps the codebooks: truncate + prefill = fresh prefill. (At a
  // multiple of n_batch: a prefill query without star blocks keeps its own chunk exactly.)
  {
    auto a = model->create_context(co);
    a->prefill(std::vector<Token>(seq.begin(), seq.begin() + 300));
    a->truncate(128);
    a->prefill(std::vector<Token>(seq.begin() + 128, seq.end()));
    CHECK(a->logits() == trained);
  }

  // Snapshots: same codebooks reload exactly; other codebooks under the same settings are refused.
  {
    auto ctx = model->create_context(co);
    ctx->prefill(seq);
    const std::string snap = dir + "/context.hckv";
    ctx->save_snapshot(snap, {});
    auto loaded = model->load_context(snap, co);
    const std::vector<Token> next = {seq[5], seq[9]};
    ctx->prefill(next, {}, nullptr, {true});
    loaded->prefill(next, {}, nullptr, {true});
    CHECK(loaded->logits() == ctx->logits());
    swap_in_other_codebooks(snap);
    std::string error;
    try {
      model->load_context(snap, co);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::printf("snapshot with other codebooks: %s\n", error.c_str());
    CHECK(error.find("other built-in codebooks") != std::string::npos);
    // Workspace codebooks are another setting: refused by the settings check.
    hcattn::ContextOptions ws = co;
    ws.kv.codebooks = "workspace";
    error.clear();
    try {
      model->load_context(snap, ws);
    } catch (const std::exception& e) {
      error = e.what();
    }
    CHECK(error.find("codebooks built-in in the snapshot vs workspace now") != std::string::npos);
  }

  // Fidelity and speed of both sources: decode one token at a time, top-1 agreement with the full cache.
  {
    auto decode_all = [&](const hcattn::ContextOptions& o, double& create_s) {
      const auto c0 = std::chrono::steady_clock::now();
      auto ctx = model->create_context(o);
      create_s = seconds_since(c0);
      std::vector<int> top;
      for (Token t : seq) top.push_back(argmax(ctx->decode(t)));
      return top;
    };
    hcattn::ContextOptions full;
    full.n_ctx = 512;
    double s = 0;
    const std::vector<int> ref = decode_all(full, s);
    for (const char* mode : {"25%", "12.5%"})
      for (const char* source : {"workspace", "builtin"}) {
        hcattn::ContextOptions o = co;
        o.kv.mode = mode;
        o.kv.codebooks = source;
        o.kv.calibration_tokens = 128;
        o.kv.centroids = 1024;
        o.codebook_cache_dir.clear();
        const auto d0 = std::chrono::steady_clock::now();
        const std::vector<int> got = decode_all(o, s);
        const double total = seconds_since(d0);
        int agree = 0;
        for (size_t i = 0; i < got.size(); ++i) agree += got[i] == ref[i];
        std::printf("stories260K %-5s %-9s codebooks: top-1 agreement with full %.2f%% (%zu positions); create %.3f s, decode all %.3f s\n",
                    mode, source, 100.0 * agree / got.size(), got.size(), s, total);
      }
  }
  std::system(("rm -rf " + dir).c_str());
  return test_summary("kv_builtin_codebooks");
}
