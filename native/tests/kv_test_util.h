// Pieces the KV tests share: fixture lookup, seeded normal samples, token sequences of a model's own
// sampling, and filling a cache layer by layer with synthetic keys, values and queries.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/threadpool.h"
#include "common/error.h"
#include "hcattn/engine.h"
#include "model/kv_cache.h"
#include "quant/types.h"

namespace hcattn_test {

// The KV shape of a synthetic cache, with the model's 1/sqrt(head_dim) logit scale.
inline hcattn::model::KvShape kv_shape(int n_layer, int n_head, int n_head_kv, int head_dim) {
  hcattn::model::KvShape s;
  s.n_layer = n_layer;
  s.n_head = n_head;
  s.n_head_kv = n_head_kv;
  s.head_dim = head_dim;
  s.kq_scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return s;
}

// n samples of N(0, sigma^2) from a seeded generator.
inline std::vector<float> gaussian(int64_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Path of a fixture file in HCATTN_TEST_DATA (default build/test-data), or "" after printing why the
// test is skipped (the caller then returns 77).
inline std::string fixture_or_skip(const std::string& name) {
  const char* dir = std::getenv("HCATTN_TEST_DATA");
  const std::string path = std::string(dir ? dir : "build/test-data") + "/" + name;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
    return path;
  }
  std::printf("skipped: %s not found (written by `node dist/fixtures.js build/test-data`)\n", path.c_str());
  return "";
}

// n tokens of the model's own sampling (full cache, fixed seeds; samples that end early are
// concatenated without their BOS).
inline std::vector<hcattn::Token> sample_tokens(hcattn::Model& model, int n, uint64_t seed) {
  std::vector<hcattn::Token> out;
  while (static_cast<int>(out.size()) < n) {
    hcattn::ContextOptions co;
    co.n_ctx = n;
    auto ctx = model.create_context(co);
    ctx->prefill({model.info().bos});
    hcattn::GenerateOptions g;
    g.max_tokens = n - 1;
    g.sampling.temperature = 1.0f;
    g.sampling.top_k = 0;
    g.sampling.top_p = 1.0f;
    g.sampling.seed = seed++;
    ctx->generate(g);
    const std::vector<hcattn::Token>& t = ctx->tokens();
    out.insert(out.end(), t.begin() + (out.empty() ? 0 : 1), t.end());
  }
  out.resize(n);
  return out;
}

// Stores positions [from, to) of d (any struct with shape s and row-major k, v, q) in chunks into
// every layer; returns every attention output, chunk by chunk and layer by layer.
template <class Data>
std::vector<float> fill(hcattn::model::KvCache& cache, const Data& d, int from, int to, int chunk,
                        hcattn::cpu::ThreadPool& pool) {
  const int kv_row = d.s.n_head_kv * d.s.head_dim, q_row = d.s.n_head * d.s.head_dim;
  std::vector<float> all, out;
  for (int pos = from; pos < to; pos += chunk) {
    const int m = std::min(chunk, to - pos);
    out.assign(static_cast<size_t>(m) * q_row, 0.0f);
    for (int layer = 0; layer < d.s.n_layer; ++layer) {
      cache.store(layer, pos, m, &d.k[static_cast<size_t>(pos) * kv_row], &d.v[static_cast<size_t>(pos) * kv_row]);
      cache.attend(layer, pos, m, &d.q[static_cast<size_t>(pos) * q_row], out.data(), pool);
      all.insert(all.end(), out.begin(), out.end());
    }
  }
  return all;
}

// The hcattn::Error message `f` throws, or "" when it succeeds. Any other exception escapes and fails the test.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const hcattn::Error& e) {
    return e.what();
  }
  return "";
}

// x as the f16 caches hold it.
inline float round_f16(float x) { return hcattn::quant::fp16_to_fp32(hcattn::quant::fp32_to_fp16(x)); }

// Exact attention of the query heads in q (n_head * head_dim) over `positions` of k and v ((position,
// n_head_kv, head_dim) rows, rounded to f16 as the caches hold them), in double: (n_head * head_dim).
inline std::vector<double> exact_attention(const hcattn::model::KvShape& s, const float* q, const float* k, const float* v,
                                           const std::vector<int32_t>& positions) {
  const int d = s.head_dim, rep = s.n_head / s.n_head_kv;
  std::vector<double> out(static_cast<size_t>(s.n_head) * d, 0.0), w(positions.size());
  for (int h = 0; h < s.n_head; ++h) {
    const int kvh = h / rep;
    const float* qh = q + static_cast<size_t>(h) * d;
    double top = -1e300, total = 0;
    for (size_t i = 0; i < positions.size(); ++i) {
      const float* kj = k + (static_cast<size_t>(positions[i]) * s.n_head_kv + kvh) * d;
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += static_cast<double>(qh[c]) * round_f16(kj[c]);
      top = std::max(top, w[i] = dot * s.kq_scale);
    }
    for (double& x : w) total += x = std::exp(x - top);
    double* o = &out[static_cast<size_t>(h) * d];
    for (size_t i = 0; i < positions.size(); ++i) {
      const float* vj = v + (static_cast<size_t>(positions[i]) * s.n_head_kv + kvh) * d;
      for (int c = 0; c < d; ++c) o[c] += w[i] * round_f16(vj[c]);
    }
    for (int c = 0; c < d; ++c) o[c] /= total;
  }
  return out;
}

// Positions [0, n).
inline std::vector<int32_t> first_positions(int n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) p[i] = i;
  return p;
}

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && !a.empty() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace hcattn_test
