#include "kv/codebook.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "common/error.h"
#include "kv/f16_rows.h"
#include "kv/nearest.h"
#include "quant/types.h"

namespace hcattn::kv {

namespace {

float squared_distance(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) {
    const float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

// A codebook of c centroids as assign_nearest reads it: (sub, c) floats and the squared centroid norms.
struct PreparedBook {
  std::vector<float> transposed, norms;
  PreparedBook() = default;
  // From a (c, sub) float codebook (training).
  PreparedBook(const float* book, int c, int sub) : transposed(static_cast<size_t>(sub) * c) {
    for (int k = 0; k < c; ++k)
      for (int j = 0; j < sub; ++j) transposed[static_cast<size_t>(j) * c + k] = book[static_cast<int64_t>(k) * sub + j];
    set_norms(c, sub);
  }
  // From one group of a KeyCodebook: f16, already (sub, c). Reuses this object's storage: encoding a decode
  // step's one key per head would otherwise allocate twice per group.
  void prepare(const uint16_t* book, int c, int sub) {
    transposed.resize(static_cast<size_t>(sub) * c);
    f16_to_f32_row(book, transposed.data(), static_cast<int64_t>(sub) * c);
    set_norms(c, sub);
  }

 private:
  void set_norms(int c, int sub) {
    norms.assign(c, 0.0f);
    for (int j = 0; j < sub; ++j)
      for (int k = 0; k < c; ++k) norms[k] += transposed[static_cast<size_t>(j) * c + k] * transposed[static_cast<size_t>(j) * c + k];
  }
};

// k-means on `n` points of `sub` dims (row-major), c centroids into out (c, sub).
void kmeans(const std::vector<float>& pts, int64_t n, int sub, int c, std::mt19937_64& rng, int iters, float* out) {
  // k-means++ seeding: each next centroid drawn with probability proportional to its squared distance to
  // the nearest centroid chosen so far. Duplicate points (d = 0 everywhere) fall back to uniform picks.
  std::vector<float> best_d(n, std::numeric_limits<float>::infinity());
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::copy_n(&pts[pick(rng) * sub], sub, out);
  for (int k = 1; k < c; ++k) {
    const float* prev = out + static_cast<int64_t>(k - 1) * sub;
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      best_d[i] = std::min(best_d[i], squared_distance(&pts[i * sub], prev, sub));
      total += best_d[i];
    }
    int64_t chosen = pick(rng);
    if (total > 0) {
      double r = unit(rng) * total;
      for (int64_t i = 0; i < n; ++i) {
        r -= best_d[i];
        if (r <= 0) {
          chosen = i;
          break;
        }
      }
    }
    std::copy_n(&pts[chosen * sub], sub, out + static_cast<int64_t>(k) * sub);
  }
  // Lloyd rounds; an empty cluster is re-seeded at the point farthest from its centroid so no code is wasted.
  std::vector<int32_t> assign(n);
  std::vector<double> sums(static_cast<size_t>(c) * sub);
  std::vector<int64_t> counts(c);
  for (int it = 0; it < iters; ++it) {
    const PreparedBook prepared(out, c, sub);
    assign_nearest(pts.data(), n, sub, sub, prepared.transposed.data(), prepared.norms.data(), c, assign.data());
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(counts.begin(), counts.end(), 0);
    int64_t far_i = 0;
    float far_d = -1;
    for (int64_t i = 0; i < n; ++i) {
      const float* x = &pts[i * sub];
      const int k = assign[i];
      ++counts[k];
      for (int j = 0; j < sub; ++j) sums[static_cast<size_t>(k) * sub + j] += x[j];
      const float d = squared_distance(x, out + static_cast<int64_t>(k) * sub, sub);
      if (d > far_d) {
        far_d = d;
        far_i = i;
      }
    }
    for (int k = 0; k < c; ++k) {
      float* ck = out + static_cast<int64_t>(k) * sub;
      if (counts[k] == 0) {
        std::copy_n(&pts[far_i * sub], sub, ck);
        continue;
      }
      for (int j = 0; j < sub; ++j) ck[j] = static_cast<float>(sums[static_cast<size_t>(k) * sub + j] / counts[k]);
    }
  }
}

// The residual levels of one group: radii[l] = base * 2^((l - 10) / 2) for l < kLevels - 1 (a factor
// sqrt(2) apart, from base / 32 to 4 * base), the last level unbounded. base is the largest residual of
// the training points, or 1/16 of their RMS norm when the codebook fits them (nearly) exactly: later keys
// lie off the training points, and their levels must still fall inside the finite range.
void set_radii(const std::vector<float>& pts, int64_t n, int sub, const float* book, int c, float* radii) {
  const PreparedBook prepared(book, c, sub);
  std::vector<int32_t> assign(n);
  assign_nearest(pts.data(), n, sub, sub, prepared.transposed.data(), prepared.norms.data(), c, assign.data());
  double worst = 0, norms = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, static_cast<double>(squared_distance(&pts[i * sub], book + static_cast<int64_t>(assign[i]) * sub, sub)));
    for (int j = 0; j < sub; ++j) norms += static_cast<double>(pts[i * sub + j]) * pts[i * sub + j];
  }
  const double base = std::max(std::sqrt(worst), std::sqrt(norms / static_cast<double>(n)) / 16);
  const int last = KeyCodebook::kLevels - 1;
  for (int l = 0; l < last; ++l) radii[l] = static_cast<float>(base * std::pow(2.0, (l - 10) / 2.0));
  radii[last] = std::numeric_limits<float>::infinity();
}

}  // namespace

KeyCodebook KeyCodebook::train(const float* keys, int64_t n, int dim, int groups, int c, uint64_t seed, int iters,
                               int64_t max_train) {
  if (dim <= 0 || groups <= 0 || dim % groups != 0)
    throw Error("key codebook: head dim " + std::to_string(dim) + " is not divisible into " +
                std::to_string(groups) + " groups");
  if (c < 1 || c > kMaxCentroids)
    throw Error("key codebook: centroid count must be in [1, " + std::to_string(kMaxCentroids) + "], got " + std::to_string(c));
  if (n < 1) throw Error("key codebook: no calibration keys");
  KeyCodebook cb;
  cb.dim = dim;
  cb.groups = groups;
  cb.centroids_per_group = c;
  const int sub = dim / groups;
  std::vector<float> book_rows(static_cast<size_t>(groups) * c * sub);  // (g, c, sub)
  cb.radii.assign(static_cast<size_t>(groups) * kLevels, 0.0f);

  std::mt19937_64 rng(seed);
  std::vector<int64_t> rows(static_cast<size_t>(std::min(n, max_train)));
  if (n <= max_train) {
    for (int64_t i = 0; i < n; ++i) rows[i] = i;
  } else {
    std::uniform_int_distribution<int64_t> pick(0, n - 1);
    for (auto& r : rows) r = pick(rng);
  }
  const int64_t m = static_cast<int64_t>(rows.size());
  // With fewer points than centroids, the extra centroids repeat points (k-means++ picks them again);
  // encoding stays exact for the training keys.
  std::vector<float> pts(static_cast<size_t>(m) * sub);
  for (int grp = 0; grp < groups; ++grp) {
    for (int64_t i = 0; i < m; ++i)
      std::copy_n(keys + rows[i] * dim + static_cast<int64_t>(grp) * sub, sub, &pts[i * sub]);
    float* book = &book_rows[static_cast<size_t>(grp) * c * sub];
    kmeans(pts, m, sub, c, rng, iters, book);
    for (size_t i = 0; i < static_cast<size_t>(c) * sub; ++i) book[i] = quant::fp16_to_fp32(quant::fp32_to_fp16(book[i]));
    set_radii(pts, m, sub, book, c, &cb.radii[static_cast<size_t>(grp) * kLevels]);
  }
  cb.set_centroid_rows(book_rows.data());
  return cb;
}

float KeyCodebook::centroid(int grp, int k, int j) const {
  return quant::fp16_to_fp32(centroids[(static_cast<size_t>(grp) * sub() + j) * centroids_per_group + k]);
}

std::vector<float> KeyCodebook::centroid_rows() const {
  const int s = sub(), c = centroids_per_group;
  std::vector<float> rows(centroids.size());
  for (int grp = 0; grp < groups; ++grp)
    for (int k = 0; k < c; ++k)
      for (int j = 0; j < s; ++j) rows[(static_cast<size_t>(grp) * c + k) * s + j] = centroid(grp, k, j);
  return rows;
}

void KeyCodebook::set_centroid_rows(const float* rows) {
  const int s = sub(), c = centroids_per_group;
  centroids.resize(static_cast<size_t>(groups) * s * c);
  for (int grp = 0; grp < groups; ++grp)
    for (int k = 0; k < c; ++k)
      for (int j = 0; j < s; ++j)
        centroids[(static_cast<size_t>(grp) * s + j) * c + k] = quant::fp32_to_fp16(rows[(static_cast<size_t>(grp) * c + k) * s + j]);
}

void KeyCodebook::encode(const float* key, uint16_t* codes) const { encode_many(key, 1, codes); }

void KeyCodebook::encode_many(const float* keys, int64_t n, uint16_t* codes) const {
  const int s = sub(), c = centroids_per_group;
  thread_local std::vector<int32_t> nearest;
  thread_local PreparedBook prepared;
  nearest.resize(n);
  for (int grp = 0; grp < groups; ++grp) {
    prepared.prepare(&centroids[static_cast<size_t>(grp) * s * c], c, s);
    const std::vector<float>& transposed = prepared.transposed;
    assign_nearest(keys + static_cast<int64_t>(grp) * s, n, dim, s, transposed.data(), prepared.norms.data(), c, nearest.data());
    const float* r = radii.empty() ? nullptr : &radii[static_cast<size_t>(grp) * kLevels];
    for (int64_t i = 0; i < n; ++i) {
      // The smallest level whose radius bounds the residual (a missing radius table bounds nothing).
      int lv = kLevels - 1;
      if (r) {
        const float* x = keys + i * dim + static_cast<int64_t>(grp) * s;
        float res2 = 0;
        for (int j = 0; j < s; ++j) {
          const float t = x[j] - transposed[static_cast<size_t>(j) * c + nearest[i]];
          res2 += t * t;
        }
        lv = static_cast<int>(std::lower_bound(r, r + kLevels - 1, std::sqrt(res2)) - r);
      }
      codes[i * groups + grp] = static_cast<uint16_t>(nearest[i] | (lv << kIndexBits));
    }
  }
}

void KeyCodebook::decode(const uint16_t* codes, float* key) const {
  const int s = sub();
  for (int grp = 0; grp < groups; ++grp)
    for (int j = 0; j < s; ++j) key[static_cast<int64_t>(grp) * s + j] = centroid(grp, index(codes[grp]), j);
}

void KeyCodebook::build_lut(const float* q, float* lut) const {
  const int s = sub(), c = centroids_per_group;
  for (int grp = 0; grp < groups; ++grp)
    lut_row_f16(q + static_cast<int64_t>(grp) * s, s, &centroids[static_cast<size_t>(grp) * s * c], c,
                lut + static_cast<int64_t>(grp) * c);
}

void KeyCodebook::build_bound_lut(const float* q, float scale, float* bound_lut) const {
  const int s = sub();
  for (int grp = 0; grp < groups; ++grp) {
    float qn = 0;
    for (int j = 0; j < s; ++j) qn += q[grp * s + j] * q[grp * s + j];
    qn = std::sqrt(qn) * std::fabs(scale);
    for (int l = 0; l < kLevels; ++l)
      bound_lut[grp * kLevels + l] = radii.empty() || l == kLevels - 1 ? std::numeric_limits<float>::infinity()
                                                                      : qn * radii[static_cast<size_t>(grp) * kLevels + l];
  }
}

void score_codes(const float* lut, const uint16_t* codes, int64_t n, int groups, int c, float* scores) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* cj = codes + j * groups;
    float s = 0;
    for (int grp = 0; grp < groups; ++grp) s += lut[static_cast<int64_t>(grp) * c + KeyCodebook::index(cj[grp])];
    scores[j] = s;
  }
}

void score_slack(const float* bound_lut, const uint16_t* codes, int64_t n, int groups, float* slack) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* cj = codes + j * groups;
    float s = 0;
    for (int grp = 0; grp < groups; ++grp) s += bound_lut[grp * KeyCodebook::kLevels + KeyCodebook::level(cj[grp])];
    slack[j] = s;
  }
}

}  // namespace hcattn::kv
