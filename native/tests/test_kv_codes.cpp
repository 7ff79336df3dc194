// Key codes: LUT scores equal exact dot products with the decoded keys, encoding picks the nearest
// centroid, the residual levels bound the exact scores (of training keys and of held-out ones) and are the
// tightest level that does, and the reconstruction error falls as the codebook grows.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kv/codebook.h"
#include "kv_test_util.h"
#include "test_util.h"

using hcattn::kv::KeyCodebook;
using hcattn_test::gaussian;

namespace {

double reconstruction_mse(const KeyCodebook& cb, const std::vector<float>& keys, int64_t n) {
  std::vector<uint16_t> codes(static_cast<size_t>(n) * cb.groups);
  cb.encode_many(keys.data(), n, codes.data());
  std::vector<float> back(cb.dim);
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    cb.decode(&codes[i * cb.groups], back.data());
    for (int j = 0; j < cb.dim; ++j) {
      const double t = back[j] - keys[i * cb.dim + j];
      err += t * t;
    }
  }
  return err / (static_cast<double>(n) * cb.dim);
}

}  // namespace

int main() {
  const int d = 128;
  const int64_t n = 4096;
  // Keys with a per-dimension scale, like real post-RoPE keys whose channels differ in magnitude.
  std::vector<float> keys = gaussian(n * d, 1);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) keys[i * d + j] *= 0.5f + 2.0f * (j % 7) / 7.0f;

  for (int groups : {64, 32}) {  // 25% and 12.5% budgets at d = 128
    const KeyCodebook cb = KeyCodebook::train(keys.data(), n, d, groups, 256, 42);
    CHECK(cb.centroids.size() == static_cast<size_t>(groups) * 256 * (d / groups));

    std::vector<uint16_t> codes(static_cast<size_t>(n) * groups);
    cb.encode_many(keys.data(), n, codes.data());
    bool in_range = true;
    for (uint16_t c : codes) in_range &= KeyCodebook::index(c) < 256;
    CHECK(in_range);

    // Encoding picks the nearest centroid (brute force over squared distances; ties allowed).
    int wrong = 0;
    const int sub = d / groups;
    for (int64_t i = 0; i < 200; ++i)
      for (int g = 0; g < groups; ++g) {
        auto dist = [&](int k) {
          double s = 0;
          for (int j = 0; j < sub; ++j) {
            const double t = keys[i * d + g * sub + j] - cb.centroid(g, k, j);
            s += t * t;
          }
          return s;
        };
        double best = 1e300;
        for (int k = 0; k < 256; ++k) best = std::min(best, dist(k));
        if (dist(KeyCodebook::index(codes[i * groups + g])) > best * (1 + 1e-4) + 1e-9) ++wrong;
      }
    CHECK(wrong == 0);

    // LUT scores = <q, decode(codes)> for every token.
    const std::vector<float> q = gaussian(d, 7);
    std::vector<float> lut(static_cast<size_t>(groups) * 256), scores(n), back(d);
    cb.build_lut(q.data(), lut.data());
    hcattn::kv::score_codes(lut.data(), codes.data(), n, groups, 256, scores.data());
    double max_err = 0;
    for (int64_t i = 0; i < n; ++i) {
      cb.decode(&codes[i * groups], back.data());
      double exact = 0;
      for (int j = 0; j < d; ++j) exact += static_cast<double>(q[j]) * back[j];
      max_err = std::max(max_err, std::fabs(exact - scores[i]) / (1 + std::fabs(exact)));
    }
    std::printf("groups=%d: LUT vs decoded-key dot, max rel err %.2e\n", groups, max_err);
    CHECK(max_err < 1e-5);

    // Residual levels: each is the smallest radius that bounds the group's residual, and LUT score + slack
    // bounds the exact score <q, key> from above (and LUT score - slack from below), for the training keys
    // and for held-out keys drawn three times wider (some beyond the calibrated range: the unbounded level).
    const std::vector<float> wide = gaussian(n * d, 8, 3.0f);
    const std::vector<float>* sets[] = {&keys, &wide};
    for (const std::vector<float>* set : sets) {
      std::vector<uint16_t> words(static_cast<size_t>(n) * groups);
      cb.encode_many(set->data(), n, words.data());
      std::vector<float> bound_lut(static_cast<size_t>(groups) * KeyCodebook::kLevels), slack(n);
      cb.build_bound_lut(q.data(), 1.0f, bound_lut.data());
      hcattn::kv::score_codes(lut.data(), words.data(), n, groups, 256, scores.data());
      hcattn::kv::score_slack(bound_lut.data(), words.data(), n, groups, slack.data());
      int loose = 0, violated = 0, unbounded = 0;
      double mean_slack = 0, mean_err = 0;
      for (int64_t i = 0; i < n; ++i) {
        for (int g = 0; g < groups; ++g) {
          const uint16_t w = words[i * groups + g];
          double r = 0;
          for (int j = 0; j < sub; ++j) r += std::pow((*set)[i * d + g * sub + j] - cb.centroid(g, KeyCodebook::index(w), j), 2);
          r = std::sqrt(r);
          const int lv = KeyCodebook::level(w);
          const float* radii = &cb.radii[static_cast<size_t>(g) * KeyCodebook::kLevels];
          loose += lv > 0 && radii[lv - 1] >= r;
          violated += r > radii[lv] * (1 + 1e-6);
          unbounded += lv == KeyCodebook::kLevels - 1;
        }
        double exact = 0;
        for (int j = 0; j < d; ++j) exact += static_cast<double>(q[j]) * (*set)[i * d + j];
        violated += std::fabs(exact - scores[i]) > slack[i] * (1 + 1e-5) + 1e-4;
        if (std::isfinite(slack[i])) {
          mean_slack += slack[i];
          mean_err += std::fabs(exact - scores[i]);
        }
      }
      std::printf("groups=%d %s keys: score bound violated %d times, %d group levels not the tightest, %d unbounded; "
                  "mean |error| %.3f, mean bound %.3f\n",
                  groups, set == &keys ? "training" : "wide held-out", violated, loose, unbounded, mean_err / n, mean_slack / n);
      CHECK(violated == 0);
      CHECK(loose == 0);
      if (set == &keys) CHECK(unbounded == 0);
      if (set == &wide) CHECK(unbounded > 0);
    }
  }

  // Reconstruction error falls as c grows (held-out keys, so this is not just memorisation).
  const std::vector<float> held = gaussian(1024 * d, 99);
  double prev = 1e300;
  for (int c : {16, 64, 256, 1024}) {
    const KeyCodebook cb = KeyCodebook::train(keys.data(), n, d, 32, c, 3);
    const double mse = reconstruction_mse(cb, held, 1024);
    std::printf("c=%4d: held-out reconstruction mse %.4f\n", c, mse);
    CHECK(mse < prev);
    prev = mse;
  }

  // Bad configurations are errors, not crashes.
  bool threw = false;
  try {
    KeyCodebook::train(keys.data(), n, d, 48, 256, 1);
  } catch (const std::exception&) {
    threw = true;
  }
  CHECK(threw);
  return test_summary("kv_codes");
}
