#include "kv/hc_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"
#include "engine/sha256.h"
#include "kv/code_tiles.h"
#include "kv/codebook.h"
#include "kv/f16_buffer.h"
#include "kv/f16_rows.h"
#include "kv/snapshot.h"
#include "quant/types.h"

namespace hcattn::kv {

KeyBudget parse_key_budget(const std::string& text) {
  if (text == "50%") return KeyBudget::Half;
  if (text == "25%") return KeyBudget::Quarter;
  if (text == "12.5%") return KeyBudget::Eighth;
  throw Error("unknown KV budget '" + text + "': use full, 50%, 25% or 12.5%");
}

const char* key_budget_name(KeyBudget b) {
  switch (b) {
    case KeyBudget::Half: return "50%";
    case KeyBudget::Quarter: return "25%";
    default: return "12.5%";
  }
}

int key_groups(KeyBudget b, int head_dim) {
  return b == KeyBudget::Quarter ? head_dim / 2 : b == KeyBudget::Eighth ? head_dim / 4 : 0;
}

namespace {

// Grows a buffer so that `n` elements fit, doubling so that appends stay amortised O(1), but never past
// `most` (what the context's capacity needs): the memory guard plans for a full context, not for twice it.
template <typename Buffer>
void ensure(Buffer& v, size_t n, size_t most) {
  if (v.size() >= n) return;
  if (v.capacity() < n) v.reserve(std::max(n, std::min(v.capacity() * 2, most)));
  v.resize(n);
}

// One (layer, KV head): its tiers and codebook.
struct HeadStore {
  // (n, d) f16: fast tier at 50%, host tier (re-scoring) otherwise; may be served from a snapshot file.
  F16Buffer keys;
  F16Buffer values;              // (n, d) f16, host tier; may be served from a snapshot file
  std::vector<uint8_t> codes;    // tiled planes (kv/code_tiles.h): g codes per position, fast tier at 25% / 12.5%
  std::vector<uint16_t> block_means;  // (ceil(n / kTailBlock), d) f16: mean value per block, fast tier (tail estimate)
  KeyCodebook codebook;          // empty until calibrated
};

// Rotated copies of each calibration key (see rotated_calibration_keys).
constexpr int kRotations = 4;

// Floats per (layer, KV head) codebook in a snapshot: centroids (g, c, d/g), then residual radii (g, levels).
size_t book_floats(size_t groups, size_t d, int centroids) {
  return groups == 0 ? 0 : groups * static_cast<size_t>(centroids) * (d / groups) + groups * KeyCodebook::kLevels;
}

// Positions a loaded context has room for beyond the snapshot's before its tiers grow (from_snapshot).
constexpr size_t kLoadRoom = 4096;

// Positions per block of the tail estimate (the mean value of a block stands for its unselected tokens).
constexpr int kTailBlock = 64;

// dense_left_ of a head not judged yet (a new, loaded or forked context): its first decode step is dense and
// judges it on the exact scores when the context holds at most kDenseFirstTokens positions. A flat head then
// pays no selecting step at all (1B shape at 8k: one costs ~20 ms more than a dense step); a sharp one reads
// every row once. Past that size the first step selects: a dense step would read the whole host tier (or
// the mapped snapshot file) for each head.
constexpr int kUnjudged = -1;
constexpr int kDenseFirstTokens = 32768;

class Cache final : public HcKvCache {
 public:
  Cache(const model::KvShape& shape, int capacity, const HcConfig& config)
      : shape_(shape), capacity_(capacity), cfg_(config),
        heads_(static_cast<size_t>(shape.n_layer) * shape.n_head_kv), calibrated_(shape.n_layer, false),
        dense_left_(heads_.size(), kUnjudged) {
    const int d = shape.head_dim;
    groups_ = key_groups(cfg_.budget, d);
    if (groups_ == 0 && cfg_.budget != KeyBudget::Half)
      throw Error("head dim " + std::to_string(d) + " is too small for the " + key_budget_name(cfg_.budget) + " KV budget");
    if (cfg_.centroids < 1 || cfg_.centroids > KeyCodebook::kMaxCentroids)
      throw Error("KV codebook size must be in [1, " + std::to_string(KeyCodebook::kMaxCentroids) + "], got " +
                  std::to_string(cfg_.centroids));
    const int64_t least_cap = cfg_.select.sinks + cfg_.select.recent + 2 * kTailBlock;
    if (cfg_.value_cap < 0 || (cfg_.value_cap > 0 && cfg_.value_cap < least_cap))
      throw Error("KV value cap of " + std::to_string(cfg_.value_cap) + " positions leaves no room beside the sinks and the recent window: use 0 (no cap) or at least " +
                  std::to_string(least_cap));
  }

  // Codebooks trained before the cache existed (HcConfig::codebooks): every layer is calibrated from the start.
  bool needs_codebooks() const override {
    return preset() && groups_ > 0 && std::find(calibrated_.begin(), calibrated_.end(), false) != calibrated_.end();
  }

  void install_codebooks(const std::shared_ptr<const std::vector<KeyCodebook>>& books) override {
    cfg_.codebooks = books;
    install_preset_codebooks();
    for (HeadStore& h : heads_)
      if (held() > 0) encode(h, 0, held());
  }

  void install_preset_codebooks() {
    const std::vector<KeyCodebook>& books = *cfg_.codebooks;
    if (books.size() != heads_.size())
      throw Error("preset KV codebooks hold " + std::to_string(books.size()) + " (layer, KV head) codebooks, the model has " +
                  std::to_string(heads_.size()));
    for (size_t i = 0; i < books.size(); ++i) {
      if (books[i].dim != shape_.head_dim || books[i].groups != groups_ || books[i].centroids_per_group != cfg_.centroids)
        throw Error("preset KV codebooks were trained for another head dim, budget or codebook size");
      heads_[i].codebook = books[i];
    }
    std::fill(calibrated_.begin(), calibrated_.end(), true);
  }

  int capacity() const override { return capacity_; }
  int stored_tokens() const override { return stored_; }
  bool calibrated(int layer) const override { return calibrated_[layer]; }
  const model::KvShape& shape() const override { return shape_; }
  const HcConfig& config() const override { return cfg_; }

  size_t mapped_bytes() const override {
    size_t b = 0;
    for (const HeadStore& h : heads_) b += h.keys.mapped_bytes() + h.values.mapped_bytes();
    return b;
  }

  SelectionCounts selection_counts() const override {
    SelectionCounts c;
    for (const Scratch& s : scratch_) {
      c.selected += s.counts.selected;
      c.candidates += s.counts.candidates;
      c.decode_steps += s.counts.decode_steps;
      c.dense_steps += s.counts.dense_steps;
    }
    return c;
  }

  int64_t evicted_tokens() const override { return evicted_; }

  std::vector<int32_t> held_positions() const override {
    if (evicted_ > 0) return {slot_pos_.begin(), slot_pos_.begin() + held()};
    std::vector<int32_t> all(static_cast<size_t>(stored_));
    std::iota(all.begin(), all.end(), 0);
    return all;
  }

  std::vector<KeyCodebook> codebooks() const override {
    if (groups_ == 0 || std::find(calibrated_.begin(), calibrated_.end(), false) != calibrated_.end()) return {};
    std::vector<KeyCodebook> out;
    for (const HeadStore& h : heads_) out.push_back(h.codebook);
    return out;
  }

  std::string codebook_digest() const override {
    engine::Sha256 sha;
    for (int layer = 0; layer < shape_.n_layer; ++layer) {
      if (!calibrated_[layer]) continue;
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
        const KeyCodebook& cb = head(layer, kvh).codebook;
        const std::vector<float> rows = cb.centroid_rows();  // the snapshot's layout
        sha.update(rows.data(), rows.size() * sizeof(float));
        sha.update(cb.radii.data(), cb.radii.size() * sizeof(float));
      }
    }
    return sha.hex_digest();
  }

  void save(SnapshotWriter& out) const override {
    const size_t n = static_cast<size_t>(held()), d = static_cast<size_t>(shape_.head_dim);  // rows per head
    const size_t g = static_cast<size_t>(groups_);
    const size_t centroid_floats = g * cfg_.centroids * (g > 0 ? d / g : 0);
    const size_t book = book_floats(g, d, cfg_.centroids);  // floats per head: centroids, then radii
    for (int layer = 0; layer < shape_.n_layer; ++layer) {
      const bool books = calibrated_[layer];
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
        const HeadStore& h = head(layer, kvh);
        if (h.keys.size() < n * d || h.values.size() < n * d ||
            (books && (h.codes.size() < tiled_bytes(held(), groups_, cfg_.centroids) || h.codebook.centroids.size() != centroid_floats)))
          throw Error("cannot save a KV snapshot while layer " + std::to_string(layer) + " holds fewer than " +
                      std::to_string(n) + " positions: save between decode steps, after every layer has stored them");
      }
      const size_t heads = static_cast<size_t>(shape_.n_head_kv);
      out.begin_section(SectionKind::Codebooks, layer, books ? heads * book * sizeof(float) : 0);
      if (books)
        for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
          const KeyCodebook& cb = head(layer, kvh).codebook;
          const std::vector<float> rows = cb.centroid_rows();
          out.write(rows.data(), rows.size() * sizeof(float));
          out.write(cb.radii.data(), cb.radii.size() * sizeof(float));
        }
      out.end_section();
      out.begin_section(SectionKind::Codes, layer, books ? heads * n * g * sizeof(uint16_t) : 0);
      if (books) {
        std::vector<uint16_t> rows(n * g);
        for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
          untile_codes(head(layer, kvh).codes.data(), held(), groups_, cfg_.centroids, rows.data());
          out.write(rows.data(), n * g * sizeof(uint16_t));
        }
      }
      out.end_section();
      out.begin_section(SectionKind::Keys, layer, heads * n * d * sizeof(uint16_t));
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) out.write(head(layer, kvh).keys.data(), n * d * sizeof(uint16_t));
      out.end_section();
      out.begin_section(SectionKind::Values, layer, heads * n * d * sizeof(uint16_t));
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) out.write(head(layer, kvh).values.data(), n * d * sizeof(uint16_t));
      out.end_section();
    }
  }

  // Positions [0, keep) of a validated snapshot (the reader has checked every section length against
  // its header, so the copies below stay inside the mapping).
  static std::unique_ptr<Cache> from_snapshot(const SnapshotReader& in, int capacity, int64_t keep, bool map_values,
                                              const HcConfig* settings) {
    const SnapshotInfo& info = in.info();
    const int64_t n = static_cast<int64_t>(info.tokens.size());
    if (keep < 0) keep = n;
    if (keep > n)
      throw Error("cannot keep " + std::to_string(keep) + " tokens of KV snapshot '" + in.path() + "': it holds only " + std::to_string(n));
    if (keep > capacity)
      throw Error("KV snapshot '" + in.path() + "' holds " + std::to_string(keep) + " tokens, more than the context size " +
                  std::to_string(capacity) + "; create the context with a larger nCtx");
    HcConfig config = info.config;
    if (settings) {
      config.tail = settings->tail;
      config.dense_share = settings->dense_share;
      config.dense_probe = settings->dense_probe;
      config.value_cap = settings->value_cap;
    }
    auto cache = std::make_unique<Cache>(info.shape, capacity, config);
    const size_t d = static_cast<size_t>(info.shape.head_dim), g = static_cast<size_t>(cache->groups_);
    const size_t centroid_floats = g * info.config.centroids * (g > 0 ? d / g : 0);
    const size_t book = book_floats(g, d, info.config.centroids);
    // The file's layer sections hold `all` rows per head: every position, or the held ones when the saved
    // context had evicted some (info.positions); the first `kept` of them are positions [0, keep).
    const std::vector<int32_t>& held = info.positions;
    const size_t all = held.empty() ? static_cast<size_t>(n) : held.size();
    const size_t kept = held.empty() ? static_cast<size_t>(keep)
                                     : static_cast<size_t>(std::lower_bound(held.begin(), held.end(), keep) - held.begin());
    // Room for kLoadRoom more positions up front: a question and its answer then append without moving
    // the tiers (growing them on the first step after loading copied the whole cache: 8k tokens of a 1B
    // model, +100 ms on that step). Not the whole capacity: bytes() reports reserved bytes, and the
    // memory guard credits them as held.
    const size_t room = std::min<size_t>(static_cast<size_t>(capacity), kept + kLoadRoom);
    // memcpy with an empty vector's null data() is undefined even for 0 bytes.
    auto copy = [](void* dst, const uint8_t* src, size_t bytes) {
      if (bytes > 0) std::memcpy(dst, src, bytes);
    };
    // Serving keys and values from the file needs them 2-byte aligned in it (the writer pads for that).
    auto payload_offset = [](const SnapshotSection& s) { return s.offset + s.bytes - s.size - 4; };  // after the framing
    std::shared_ptr<const MappedFileHandle> file;
    if (map_values) {
      bool aligned = true;
      for (int layer = 0; layer < info.shape.n_layer; ++layer)
        aligned = aligned && payload_offset(in.section(SectionKind::Keys, layer)) % 2 == 0 &&
                  payload_offset(in.section(SectionKind::Values, layer)) % 2 == 0;
      if (aligned) file = std::make_shared<const MappedFileHandle>(in.path());
    }
    for (int layer = 0; layer < info.shape.n_layer; ++layer) {
      // Codebooks trained on keys past the kept ones would not exist in a fresh prefill of [0, keep): drop them.
      const bool keep_books = info.calibrated[layer] && (kept >= static_cast<size_t>(info.config.calibration_tokens) ||
                                                         info.config.codebook_source == CodebookSource::Preset);
      cache->calibrated_[layer] = keep_books;
      const uint8_t* books = in.section(SectionKind::Codebooks, layer).data;
      const uint8_t* codes = in.section(SectionKind::Codes, layer).data;
      const uint8_t* keys = in.section(SectionKind::Keys, layer).data;
      const uint8_t* values = in.section(SectionKind::Values, layer).data;
      for (int kvh = 0; kvh < info.shape.n_head_kv; ++kvh) {
        HeadStore& h = cache->head(layer, kvh);
        const size_t head_offset = kvh * all * d * sizeof(uint16_t);
        if (file) {
          h.keys.map(file, payload_offset(in.section(SectionKind::Keys, layer)) + head_offset, kept * d,
                     static_cast<size_t>(capacity) * d);
          h.values.map(file, payload_offset(in.section(SectionKind::Values, layer)) + head_offset, kept * d,
                       static_cast<size_t>(capacity) * d);
        } else {
          h.keys.reserve(room * d);
          h.values.reserve(room * d);
          h.keys.resize(kept * d);
          h.values.resize(kept * d);
          copy(h.keys.data(), keys + head_offset, kept * d * sizeof(uint16_t));
          copy(h.values.data(), values + head_offset, kept * d * sizeof(uint16_t));
        }
        if (cache->cfg_.tail) cache->update_block_means(h, 0, static_cast<int>(kept));
        if (g == 0) continue;
        h.codes.reserve(tiled_bytes(static_cast<int64_t>(room), cache->groups_, info.config.centroids));
        h.codes.resize(tiled_bytes(static_cast<int64_t>(kept), cache->groups_, info.config.centroids));
        if (!keep_books) continue;
        std::vector<uint16_t> rows(kept * g);
        copy(rows.data(), codes + kvh * all * g * sizeof(uint16_t), kept * g * sizeof(uint16_t));
        tile_codes(rows.data(), 0, static_cast<int64_t>(kept), cache->groups_, info.config.centroids, h.codes.data());
        h.codebook.dim = static_cast<int>(d);
        h.codebook.groups = static_cast<int>(g);
        h.codebook.centroids_per_group = info.config.centroids;
        h.codebook.radii.resize(g * KeyCodebook::kLevels);
        const uint8_t* src = books + kvh * book * sizeof(float);
        std::vector<float> centroid_rows(centroid_floats);
        copy(centroid_rows.data(), src, centroid_floats * sizeof(float));
        h.codebook.set_centroid_rows(centroid_rows.data());
        copy(h.codebook.radii.data(), src + centroid_floats * sizeof(float), h.codebook.radii.size() * sizeof(float));
      }
    }
    cache->stored_ = static_cast<int>(keep);
    cache->evicted_ = static_cast<int>(keep - static_cast<int64_t>(kept));
    if (cache->capped() || cache->evicted_ > 0) {
      cache->slot_pos_.resize(kept);
      if (held.empty()) std::iota(cache->slot_pos_.begin(), cache->slot_pos_.end(), 0);
      else std::copy_n(held.begin(), kept, cache->slot_pos_.begin());
    }
    // A snapshot does not keep attention mass: the loaded tokens start from none.
    if (cache->capped()) cache->mass_.assign(kept, 0.0f);
    return cache;
  }

  TierBytes bytes() const override {
    TierBytes b;
    const bool keys_fast = cfg_.budget == KeyBudget::Half;
    for (const HeadStore& h : heads_) {
      const size_t key_bytes = h.keys.heap_bytes();
      (keys_fast ? b.fast : b.host) += key_bytes;
      b.host += h.values.heap_bytes();
      b.fast += h.codes.capacity() + h.codebook.centroids.capacity() * sizeof(uint16_t) +
                h.codebook.radii.capacity() * sizeof(float) + h.block_means.capacity() * sizeof(uint16_t);
    }
    return b;
  }

  void store(int layer, int pos, int n_tokens, const float* k, const float* v) override {
    store_on(layer, pos, n_tokens, k, v, nullptr);
  }

  void store_parallel(int layer, int pos, int n_tokens, const float* k, const float* v, cpu::ThreadPool& pool) override {
    store_on(layer, pos, n_tokens, k, v, &pool);
  }

  // store(), the KV heads of the layer spread over `pool` when there is one (each head's rows, codes and
  // block means are its own; encoding keeps no shared state).
  void store_on(int layer, int pos, int n_tokens, const float* k, const float* v, cpu::ThreadPool* pool) {
    if (pos < 0 || pos + n_tokens > capacity_)
      throw Error("context is full: positions up to " + std::to_string(pos + n_tokens) + " do not fit in " +
                  std::to_string(capacity_) + "; create the context with a larger nCtx");
    if (pos < evicted_ || pos > stored_)
      throw Error("KV positions from " + std::to_string(pos) + " cannot be stored: the cache holds " + std::to_string(stored_) +
                  " positions, " + std::to_string(evicted_) + " of them evicted (internal error)");
    // Layer 0 stores a chunk first: that is when every layer holds the same slots and room can be made.
    if (layer == 0 && capped()) make_room(pos, n_tokens);
    const int slot = pos - evicted_;  // the chunk lies after every evicted position
    const int d = shape_.head_dim;
    const size_t row = static_cast<size_t>(shape_.n_head_kv) * d;
    const size_t end = static_cast<size_t>(slot + n_tokens);
    for_each_head(pool, [&](int kvh) {
      HeadStore& h = head(layer, kvh);
      // Entries past `slot` belong to a truncated continuation: they are overwritten.
      ensure(h.keys, end * d, slot_room() * d);
      ensure(h.values, end * d, slot_room() * d);
      for (int t = 0; t < n_tokens; ++t)
        for (int i = 0; i < d; ++i) {
          const size_t src = static_cast<size_t>(t) * row + static_cast<size_t>(kvh) * d + i;
          const size_t dst = (static_cast<size_t>(slot) + t) * d + i;
          h.keys[dst] = quant::fp32_to_fp16(k[src]);
          h.values[dst] = quant::fp32_to_fp16(v[src]);
        }
      if (groups_ > 0) {
        ensure(h.codes, tiled_bytes(slot + n_tokens, groups_, cfg_.centroids),
               tiled_bytes(static_cast<int64_t>(slot_room()), groups_, cfg_.centroids));
        if (calibrated_[layer]) encode(h, slot, n_tokens);
      }
      if (cfg_.tail) update_block_means(h, slot, slot + n_tokens);
    });
    if (layer == 0) {
      stored_ = pos + n_tokens;
      if (capped() || evicted_ > 0) {
        slot_pos_.resize(end);
        std::iota(slot_pos_.begin() + slot, slot_pos_.end(), pos);
      }
      if (capped()) {
        mass_.resize(slot);  // a truncated continuation's mass is not these tokens'
        mass_.resize(end, 0.0f);
      }
    }
    if (groups_ > 0 && !calibrated_[layer] && slot + n_tokens >= cfg_.calibration_tokens) {
      if (preset()) throw Error("KV cache with preset codebooks stored positions before they were installed (internal error)");
      calibrate(layer, slot + n_tokens, pool);
    }
  }

  void attend(int layer, int pos, int n_tokens, const float* q, float* out, cpu::ThreadPool& pool) override {
    const int hd = shape_.head_dim;
    const int n_q = shape_.n_head * hd;
    if (static_cast<int>(scratch_.size()) < pool.size()) scratch_.resize(pool.size());
    const int rep = shape_.n_head / shape_.n_head_kv;
    pos -= evicted_;  // the queries' slots (the chunk lies after every evicted position)
    const bool star = phase_ == AttendPhase::Star && cfg_.star_block > 0;
    // Exact attention (star blocks, or a layer without codebooks yet) needs no selection: the query heads
    // of a KV head read the rows together.
    const bool exact = star || (groups_ > 0 && !calibrated_[layer]);
    if (exact || cfg_.gqa_shared) {
      // One selection per (token, KV head), shared by its query heads. A decode step has one task per KV
      // head, so only it touches that head's dense_left_.
      const bool decode = n_tokens == 1 && !exact;
      pool.parallel_for(static_cast<int64_t>(n_tokens) * shape_.n_head_kv, 1, [&](int64_t begin, int64_t end, int thread) {
        Scratch& s = scratch_[thread];
        for (int64_t task = begin; task < end; ++task) {
          const int t = static_cast<int>(task / shape_.n_head_kv);
          const int kvh = static_cast<int>(task % shape_.n_head_kv);
          const size_t off = static_cast<size_t>(t) * n_q + static_cast<size_t>(kvh) * rep * hd;
          if (exact) {
            attend_exact_group(layer, kvh, pos + t, q + off, out + off, s);
          } else if (!decode) {
            attend_group(layer, kvh, pos + t, n_tokens > 1 ? pos : -1, q + off, out + off, s);
          } else {
            int& dense_left = dense_left_[static_cast<size_t>(layer) * shape_.n_head_kv + kvh];
            const int n = pos + 1;
            ++s.counts.decode_steps;
            if (dense_left == kUnjudged) dense_left = cfg_.dense_share > 0 && n <= kDenseFirstTokens ? 1 : 0;
            if (dense_left > 0) {
              --dense_left;
              ++s.counts.dense_steps;
              // The last step of a dense run checks, on its exact scores, whether a selection would still
              // keep dense_share of the tokens: then another run follows without a selecting step.
              const int64_t kept = attend_exact_group(layer, kvh, pos, q + off, out + off, s, dense_left == 0);
              if (dense_left == 0 && static_cast<double>(kept) >= cfg_.dense_share * n) dense_left = cfg_.dense_probe - 1;
              s.counts.selected += n;
              s.counts.candidates += n;
            } else {
              attend_group(layer, kvh, pos, -1, q + off, out + off, s);
              if (cfg_.dense_share > 0 && static_cast<double>(s.sel.index.size()) >= cfg_.dense_share * n)
                dense_left = cfg_.dense_probe - 1;
            }
          }
        }
      });
      return;
    }
    pool.parallel_for(static_cast<int64_t>(n_tokens) * shape_.n_head, 1, [&](int64_t begin, int64_t end, int thread) {
      Scratch& s = scratch_[thread];
      for (int64_t task = begin; task < end; ++task) {
        const int t = static_cast<int>(task / shape_.n_head);
        const int h = static_cast<int>(task % shape_.n_head);
        const size_t off = static_cast<size_t>(t) * n_q + static_cast<size_t>(h) * hd;
        attend_one(layer, h, pos + t, n_tokens > 1 ? pos : -1, q + off, out + off, s);
      }
    });
  }

  void truncate(int n) override {
    if (capped()) fold_mass();
    const int slots = slot_at_or_after(std::min(stored_, n));  // the held slots of positions [0, n)
    stored_ = std::min(stored_, n);
    evicted_ = stored_ - slots;
    if (slot_pos_.size() > static_cast<size_t>(slots)) slot_pos_.resize(slots);
    if (capped()) mass_.resize(slots);
    // Slots past these will be written over: only the first `slots` may still be read from a snapshot file.
    for (HeadStore& h : heads_) {
      h.keys.limit_mapped(static_cast<size_t>(slots) * shape_.head_dim);
      h.values.limit_mapped(static_cast<size_t>(slots) * shape_.head_dim);
    }
    if (slots >= cfg_.calibration_tokens || preset()) return;
    // Codebooks trained on keys past n would not exist in a fresh prefill of [0, n).
    for (int layer = 0; layer < shape_.n_layer; ++layer) {
      calibrated_[layer] = false;
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) head(layer, kvh).codebook = KeyCodebook{};
    }
  }

  void set_phase(AttendPhase phase) override { phase_ = phase; }

  std::unique_ptr<model::KvCache> clone_prefix(int n_positions) const override {
    auto copy = std::make_unique<Cache>(shape_, capacity_, cfg_);
    const int d = shape_.head_dim;
    // Positions [0, n_positions) are the first n held slots.
    const int n = slot_at_or_after(std::min(n_positions, stored_));
    if (capped() || evicted_ > 0) copy->slot_pos_.assign(slot_pos_.begin(), slot_pos_.begin() + n);
    if (capped()) copy->mass_ = mass_of_first(n);
    for (int layer = 0; layer < shape_.n_layer; ++layer) {
      // Codebooks trained on keys past n would not exist in a fresh prefill of [0, n): drop them.
      const bool keep_books = calibrated_[layer] && (n >= cfg_.calibration_tokens || preset());
      copy->calibrated_[layer] = keep_books;
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
        const HeadStore& src = head(layer, kvh);
        HeadStore& dst = copy->head(layer, kvh);
        dst.keys.copy_prefix(src.keys, static_cast<size_t>(n) * d);
        dst.values.copy_prefix(src.values, static_cast<size_t>(n) * d);
        if (cfg_.tail) copy->update_block_means(dst, 0, n);
        if (groups_ > 0) {
          dst.codes.assign(src.codes.begin(), src.codes.begin() + std::min(tiled_bytes(n, groups_, cfg_.centroids), src.codes.size()));
          if (keep_books) dst.codebook = src.codebook;
        }
      }
    }
    copy->stored_ = std::min(n_positions, stored_);
    copy->evicted_ = copy->stored_ - n;
    return copy;
  }

 private:
  struct Scratch {
    std::vector<float> scores, upper, lut, bound_lut, final, acc;
    std::vector<float> head_scores, head_upper;  // GQA-shared selection: per query head of the group
    std::vector<float> tops, shifts;              // per query head of the group
    std::vector<int32_t> positions;               // 0 .. n - 1 (50%: every key is scored exactly)
    std::vector<double> totals, block_mass;
    std::vector<uint8_t> selected;
    Selection sel;
    SelectionCounts counts;  // this thread's share of selection_counts()
    std::vector<float> mass;  // value cap: attention mass this thread's queries gave each slot since the last fold
  };

  bool preset() const { return cfg_.codebook_source == CodebookSource::Preset; }
  bool capped() const { return cfg_.value_cap > 0; }
  int held() const { return stored_ - evicted_; }
  // Slots the tiers grow to at most: the capacity, or the value cap below it.
  size_t slot_room() const { return static_cast<size_t>(capped() ? std::min(capacity_, cfg_.value_cap) : capacity_); }
  // The first held slot at or after position pos (<= stored_).
  int slot_at_or_after(int pos) const {
    if (evicted_ == 0) return pos;
    return static_cast<int>(std::lower_bound(slot_pos_.begin(), slot_pos_.begin() + held(), pos) - slot_pos_.begin());
  }

  HeadStore& head(int layer, int kvh) { return heads_[static_cast<size_t>(layer) * shape_.n_head_kv + kvh]; }
  const HeadStore& head(int layer, int kvh) const {
    return heads_[static_cast<size_t>(layer) * shape_.n_head_kv + kvh];
  }

  void encode(HeadStore& h, int pos, int n_tokens) {
    const int d = shape_.head_dim;
    std::vector<float> keys(static_cast<size_t>(n_tokens) * d);
    f16_to_f32_row(&h.keys[static_cast<size_t>(pos) * d], keys.data(), static_cast<int64_t>(keys.size()));
    std::vector<uint16_t> rows(static_cast<size_t>(n_tokens) * groups_);
    h.codebook.encode_many(keys.data(), n_tokens, rows.data());
    tile_codes(rows.data(), pos, n_tokens, groups_, cfg_.centroids, h.codes.data());
  }

  void calibrate(int layer, int stored, cpu::ThreadPool* pool) {
    const int d = shape_.head_dim;
    const int n = cfg_.calibration_tokens;
    for_each_head(pool, [&](int kvh) {
      HeadStore& h = head(layer, kvh);
      std::vector<float> keys(static_cast<size_t>(n) * d);
      f16_to_f32_row(h.keys.data(), keys.data(), static_cast<int64_t>(keys.size()));
      h.codebook = train_key_codebook(shape_, cfg_, keys.data(), n, layer, kvh, capacity_);
      encode(h, 0, stored);
    });
    calibrated_[layer] = true;
  }

  // f(kvh) for every KV head, over the pool's threads when there is one.
  template <typename F>
  void for_each_head(cpu::ThreadPool* pool, F&& f) {
    if (!pool || shape_.n_head_kv == 1) {
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) f(kvh);
      return;
    }
    pool->parallel_for(shape_.n_head_kv, 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t kvh = begin; kvh < end; ++kvh) f(static_cast<int>(kvh));
    });
  }

  float exact_score(const HeadStore& h, const float* q, int j) const {
    const int d = shape_.head_dim;
    return dot_f16(q, &h.keys[static_cast<size_t>(j) * d], d) * shape_.kq_scale;
  }

  // Scores of positions [0, n) for the rep query heads in q_group (rep rows of d) into s.head_scores, and
  // their upper bounds into s.head_upper when `bounded`: exact from the f16 keys at 50% (each key row read
  // once for the heads), from the key codes otherwise.
  void score_heads(const HeadStore& hs, const float* q_group, int rep, int n, bool bounded, Scratch& s) const {
    const int d = shape_.head_dim;
    const size_t all = static_cast<size_t>(rep) * n;
    s.head_scores.resize(all);
    if (groups_ == 0) {
      for (int j = static_cast<int>(s.positions.size()); j < n; ++j) s.positions.push_back(j);
      dot_rows_f16(q_group, rep, hs.keys.data(), s.positions.data(), n, d, shape_.kq_scale, s.head_scores.data());
      return;
    }
    s.head_upper.resize(all);
    const int c = cfg_.centroids;
    const size_t lut_size = static_cast<size_t>(groups_) * c, bound_size = static_cast<size_t>(groups_) * KeyCodebook::kLevels;
    s.lut.resize(rep * lut_size);
    s.bound_lut.resize(rep * bound_size);
    // Without bounds the bound tables are zero, so upper is the score (plus its rounding error).
    for (int r = 0; r < rep; ++r) {
      hs.codebook.build_lut(q_group + static_cast<size_t>(r) * d, &s.lut[r * lut_size]);
      if (bounded)
        hs.codebook.build_bound_lut(q_group + static_cast<size_t>(r) * d, shape_.kq_scale * cfg_.bound_scale, &s.bound_lut[r * bound_size]);
      else
        std::fill_n(&s.bound_lut[r * bound_size], bound_size, 0.0f);
    }
    score_code_tiles(rep, s.lut.data(), s.bound_lut.data(), hs.codes.data(), n, groups_, c, shape_.kq_scale,
                     s.head_scores.data(), s.head_upper.data());
  }

  // Top-p selection for the query of head h alone at position p (gqa_shared off); chunk_start >= 0 when
  // it belongs to a prefill chunk starting there (decode: -1).
  void attend_one(int layer, int h, int p, int chunk_start, const float* q, float* out, Scratch& s) const {
    const int kvh = h / (shape_.n_head / shape_.n_head_kv);
    const HeadStore& hs = head(layer, kvh);
    const int n = p + 1;
    // Prefill queries keep their chunk's earlier tokens exactly, like the recent window of decode.
    SelectParams params = cfg_.select;
    if (chunk_start >= 0) params.recent = std::max<int64_t>(params.recent, p - chunk_start + 1);
    const bool bounded = groups_ > 0 && cfg_.bound_scale > 0;
    score_heads(hs, q, 1, n, bounded, s);
    select_tokens(s.head_scores.data(), n, params, s.sel, bounded ? s.head_upper.data() : nullptr);
    s.counts.selected += static_cast<int64_t>(s.sel.index.size());
    s.counts.candidates += n;
    s.tops.assign(1, max_of(s.head_scores.data(), n));
    weigh_and_sum_group(hs, q, 1, n, params, s, out);
  }

  // GQA-shared selection: the query heads of KV head kvh (q_group and out_group hold them one after the
  // other) score the codes (at 50%: the f16 keys, exactly), one selection is made on the maximum over the
  // heads of each token's score relative to that head's top score (the union of what the heads attend
  // to), and each head then weighs and sums the shared tokens with its own exact scores.
  void attend_group(int layer, int kvh, int p, int chunk_start, const float* q_group, float* out_group, Scratch& s) const {
    const int rep = shape_.n_head / shape_.n_head_kv, n = p + 1;
    const HeadStore& hs = head(layer, kvh);
    SelectParams params = cfg_.select;
    if (chunk_start >= 0) params.recent = std::max<int64_t>(params.recent, p - chunk_start + 1);
    // Without bounds (and at 50%, where the scores are exact) the selection uses only the scores.
    const bool bounded = groups_ > 0 && cfg_.bound_scale > 0;
    score_heads(hs, q_group, rep, n, bounded, s);
    s.tops.resize(rep);
    for (int r = 0; r < rep; ++r) s.tops[r] = max_of(&s.head_scores[static_cast<size_t>(r) * n], n);
    s.scores.resize(n);
    max_shifted_rows(s.head_scores.data(), rep, n, s.tops.data(), s.scores.data());
    if (bounded) {
      s.upper.resize(n);
      max_shifted_rows(s.head_upper.data(), rep, n, s.tops.data(), s.upper.data());
    }
    select_tokens(s.scores.data(), n, params, s.sel, bounded ? s.upper.data() : nullptr);
    s.counts.selected += static_cast<int64_t>(s.sel.index.size());
    s.counts.candidates += n;
    weigh_and_sum_group(hs, q_group, rep, n, params, s, out_group);
  }

  // Attention outputs of the rep query heads of one KV head over the selected tokens s.sel, with their
  // approximate scores of all n tokens in s.head_scores and top scores in s.tops: each selected key and
  // value row is read once for all the heads.
  //   out = (sum over selected of w_j v_j + estimated tail) / (sum of their weights), where the tail
  //   stands for the tokens left out: per block of kTailBlock positions, their (approximate) weight
  //   times the block's mean value. Only blocks wholly before the recent window take part, so a prefill
  //   query never sees a value from its own future through a block mean.
  void weigh_and_sum_group(const HeadStore& hs, const float* q_group, int rep, int n, const SelectParams& params, Scratch& s,
                           float* out_group) const {
    const int d = shape_.head_dim;
    const std::vector<int32_t>& index = s.sel.index;
    const int64_t k = static_cast<int64_t>(index.size());
    const int64_t recent_from = std::max<int64_t>(0, n - params.recent);
    // Final scores of the selected tokens: exact where the keys are read (re-scoring, and always for the
    // sinks and recent window), approximate otherwise.
    s.final.resize(static_cast<size_t>(rep) * k);
    if (groups_ == 0) {
      // 50%: the scores are already exact.
      for (int r = 0; r < rep; ++r)
        for (int64_t i = 0; i < k; ++i) s.final[r * k + i] = s.head_scores[static_cast<size_t>(r) * n + index[i]];
    } else if (cfg_.rescore) {
      dot_rows_f16(q_group, rep, hs.keys.data(), index.data(), k, d, shape_.kq_scale, s.final.data());
    } else {
      for (int r = 0; r < rep; ++r)
        for (int64_t i = 0; i < k; ++i) {
          const int j = index[i];
          const bool exact = j < cfg_.select.sinks || j >= recent_from;
          s.final[r * k + i] = exact ? exact_score(hs, q_group + static_cast<size_t>(r) * d, j) : s.head_scores[static_cast<size_t>(r) * n + j];
        }
    }
    // Weights relative to the highest score of each head, selected (exact) or not (approximate, tail).
    s.totals.resize(rep);
    s.shifts.resize(rep);
    for (int r = 0; r < rep; ++r) {
      float* f = &s.final[r * k];
      const float m = s.shifts[r] = k > 0 ? std::max(s.tops[r], max_of(f, k)) : s.tops[r];
      s.totals[r] = exp_shifted(f, k, m);
    }
    s.acc.assign(static_cast<size_t>(rep) * d, 0.0f);
    weighted_rows_f16(s.final.data(), rep, hs.values.data(), index.data(), k, d, s.acc.data());
    if (cfg_.tail && k < n) {  // nothing to add when every token is selected
      s.selected.assign(n, 0);
      for (int32_t j : index) s.selected[j] = 1;
      const int64_t blocks = recent_from / kTailBlock;
      s.block_mass.resize(blocks);
      for (int r = 0; r < rep; ++r) {
        block_exp_sums(&s.head_scores[static_cast<size_t>(r) * n], s.selected.data(), blocks, kTailBlock, s.shifts[r],
                       s.block_mass.data());
        for (int64_t b = 0; b < blocks; ++b) {
          const double t = s.block_mass[b];
          if (t == 0) continue;
          s.totals[r] += t;
          axpy_f16(static_cast<float>(t), &hs.block_means[static_cast<size_t>(b) * d], &s.acc[static_cast<size_t>(r) * d], d);
        }
      }
    }
    if (capped()) add_mass(rep, index.data(), k, s);
    write_outputs(rep, s, out_group);
  }

  // Exact attention of the query heads of KV head kvh at position p, each key and value row read once for
  // all the heads. Star attention reads the anchor (the first star_block positions, as in the Star
  // Attention paper: with only the 4 sinks, question agreement after a star-prefilled stories260K prefix
  // fell from 60% to 44%) and the query's own aligned block; a layer without codebooks yet reads every
  // key. Either way all scores are exact and nothing is estimated.
  // With `recheck` (a dense decode step over every slot), it also returns how many tokens the top-p selection
  // would keep on these exact scores (shared by the query heads, as attend_group selects); else 0.
  int64_t attend_exact_group(int layer, int kvh, int p, const float* q_group, float* out_group, Scratch& s,
                             bool recheck = false) const {
    const int d = shape_.head_dim, rep = shape_.n_head / shape_.n_head_kv, n = p + 1;
    const HeadStore& hs = head(layer, kvh);
    const bool star = phase_ == AttendPhase::Star && cfg_.star_block > 0;
    // Star blocks are aligned in positions; p is the query's slot (its position less the evicted ones).
    const int from = star ? slot_at_or_after((p + evicted_) / cfg_.star_block * cfg_.star_block) : 0;
    const int anchor = star ? std::min(cfg_.star_block, from) : 0;
    // Every slot (dense decode steps, layers before calibration) reads the thread's standing 0 .. n - 1.
    const int32_t* index = nullptr;
    if (anchor == 0 && from == 0) {
      for (int j = static_cast<int>(s.positions.size()); j < n; ++j) s.positions.push_back(j);
      index = s.positions.data();
    } else {
      std::vector<int32_t>& star_index = s.sel.index;
      star_index.clear();
      for (int j = 0; j < anchor; ++j) star_index.push_back(j);
      for (int j = from; j < n; ++j) star_index.push_back(j);
      index = star_index.data();
    }
    const int64_t k = anchor + (n - from);
    s.final.resize(static_cast<size_t>(rep) * k);
    dot_rows_f16(q_group, rep, hs.keys.data(), index, k, d, shape_.kq_scale, s.final.data());
    s.tops.resize(rep);
    for (int r = 0; r < rep; ++r) s.tops[r] = k > 0 ? max_of(&s.final[r * k], k) : 0.0f;
    int64_t kept = 0;
    if (recheck && k == n) {
      s.scores.resize(k);
      max_shifted_rows(s.final.data(), rep, k, s.tops.data(), s.scores.data());
      select_tokens(s.scores.data(), k, cfg_.select, s.sel, nullptr);
      kept = static_cast<int64_t>(s.sel.index.size());
    }
    s.totals.resize(rep);
    for (int r = 0; r < rep; ++r) s.totals[r] = exp_shifted(&s.final[r * k], k, s.tops[r]);
    s.acc.assign(static_cast<size_t>(rep) * d, 0.0f);
    weighted_rows_f16(s.final.data(), rep, hs.values.data(), index, k, d, s.acc.data());
    if (capped()) add_mass(rep, index, k, s);
    write_outputs(rep, s, out_group);
    return kept;
  }

  // Value cap: adds the attention weight each of the rep heads gave each token it read (s.final holds
  // their unnormalised weights, s.totals their sums) to this thread's mass per slot.
  void add_mass(int rep, const int32_t* index, int64_t k, Scratch& s) const {
    if (s.mass.size() < static_cast<size_t>(held())) s.mass.resize(held(), 0.0f);
    for (int r = 0; r < rep; ++r) {
      const float inv = static_cast<float>(1.0 / s.totals[r]);
      const float* w = &s.final[static_cast<size_t>(r) * k];
      for (int64_t i = 0; i < k; ++i) s.mass[index[i]] += w[i] * inv;
    }
  }

  // Value cap: the attention mass of the first n slots, mass_ plus what every thread's queries added since
  // the last fold.
  std::vector<float> mass_of_first(int n) const {
    std::vector<float> mass(static_cast<size_t>(n), 0.0f);
    std::copy_n(mass_.begin(), std::min(mass_.size(), mass.size()), mass.begin());
    for (const Scratch& s : scratch_)
      for (size_t j = 0; j < std::min(s.mass.size(), mass.size()); ++j) mass[j] += s.mass[j];
    return mass;
  }

  // Value cap: mass_ gains what every thread's queries added since the last fold.
  void fold_mass() {
    mass_ = mass_of_first(held());
    for (Scratch& s : scratch_) s.mass.clear();
  }

  // Before layer 0 stores positions [pos, pos + n_tokens) under a value cap: when they would pass it,
  // evicts held tokens (not the sinks, not the last select.recent held), leaving value_cap / 16 slots
  // free after the chunk.
  void make_room(int pos, int n_tokens) {
    const int cap = cfg_.value_cap;
    const int slot = pos - evicted_;
    if (slot + n_tokens <= cap) return;
    const int first = static_cast<int>(std::min<int64_t>(slot, cfg_.select.sinks));
    const int last = static_cast<int>(std::max<int64_t>(first, slot - cfg_.select.recent));  // candidates [first, last)
    const int need = slot + n_tokens - (cap - cap / 16);
    if (slot + n_tokens - (last - first) > cap)
      throw Error("a chunk of " + std::to_string(n_tokens) + " tokens does not fit in the KV value cap of " + std::to_string(cap) +
                  " positions beside the sinks and the recent window: raise the value cap or lower the batch size");
    evict(std::min(need, last - first), first, last);
  }

  // Evicts `count` of the held slots [first, last), the first in HcConfig::eviction order, from every
  // layer and KV head, and moves the later slots down.
  void evict(int count, int first, int last) {
    if (count <= 0) return;
    fold_mass();
    const int n = held(), d = shape_.head_dim;
    std::vector<int32_t> order(static_cast<size_t>(last - first));
    std::iota(order.begin(), order.end(), first);
    // Eviction order (HcConfig::eviction); ties go to the older slot.
    std::vector<float> rank(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
      const int32_t j = order[i];
      rank[i] = cfg_.eviction == Eviction::Oldest ? 0.0f
                : cfg_.eviction == Eviction::Mass ? mass_[j]
                                                  : mass_[j] / static_cast<float>(stored_ - slot_pos_[j]);
    }
    auto key = [&](int32_t j) { return rank[j - first]; };
    std::nth_element(order.begin(), order.begin() + count, order.end(),
                     [&](int32_t a, int32_t b) { return key(a) < key(b) || (key(a) == key(b) && a < b); });
    std::vector<uint8_t> gone(static_cast<size_t>(n), 0);
    for (int i = 0; i < count; ++i) gone[order[i]] = 1;
    const int from = *std::min_element(order.begin(), order.begin() + count);
    std::vector<int32_t> kept;  // slots from `from` on that stay, in order; kept[i] moves to from + i
    for (int j = from; j < n; ++j)
      if (!gone[j]) kept.push_back(j);
    const int after = from + static_cast<int>(kept.size());
    auto compact_rows = [&](auto* rows, size_t width) {
      for (size_t i = 0; i < kept.size(); ++i)
        std::memmove(rows + (from + i) * width, rows + static_cast<size_t>(kept[i]) * width, width * sizeof(*rows));
    };
    std::vector<uint16_t> code_rows;
    for (int layer = 0; layer < shape_.n_layer; ++layer)
      for (int kvh = 0; kvh < shape_.n_head_kv; ++kvh) {
        HeadStore& h = head(layer, kvh);
        // Rows from `from` on are rewritten: a snapshot file may serve only those before it.
        h.keys.limit_mapped(static_cast<size_t>(from) * d);
        h.values.limit_mapped(static_cast<size_t>(from) * d);
        compact_rows(h.keys.data(), d);
        compact_rows(h.values.data(), d);
        h.keys.resize(static_cast<size_t>(after) * d);
        h.values.resize(static_cast<size_t>(after) * d);
        if (groups_ > 0 && calibrated_[layer]) {
          code_rows.resize(static_cast<size_t>(n) * groups_);
          untile_codes(h.codes.data(), n, groups_, cfg_.centroids, code_rows.data());
          compact_rows(code_rows.data(), groups_);
          tile_codes(code_rows.data() + static_cast<size_t>(from) * groups_, from, after - from, groups_, cfg_.centroids, h.codes.data());
        }
        if (cfg_.tail) {
          h.block_means.resize(static_cast<size_t>((after + kTailBlock - 1) / kTailBlock) * d);
          update_block_means(h, from, after);
        }
      }
    compact_rows(slot_pos_.data(), 1);
    compact_rows(mass_.data(), 1);
    slot_pos_.resize(after);
    mass_.resize(after);
    evicted_ += count;
  }

  // out_group[r] = s.acc[r] / s.totals[r] for the rep heads of a group.
  void write_outputs(int rep, const Scratch& s, float* out_group) const {
    const int d = shape_.head_dim;
    for (int r = 0; r < rep; ++r) {
      const float inv = static_cast<float>(1.0 / s.totals[r]);
      for (int c = 0; c < d; ++c) out_group[r * d + c] = s.acc[r * d + c] * inv;
    }
  }

  // Mean value of each tail block touched by positions [from, end) (a partial last block: of its stored positions).
  void update_block_means(HeadStore& h, int from, int end) const {
    const int d = shape_.head_dim;
    ensure(h.block_means, static_cast<size_t>((end + kTailBlock - 1) / kTailBlock) * d,
           static_cast<size_t>((capacity_ + kTailBlock - 1) / kTailBlock) * d);
    // The block's rows converted at once (vector F16C), then summed per column in position order.
    std::vector<float> rows(static_cast<size_t>(kTailBlock) * d), sum(d);
    for (int b = from / kTailBlock; b * kTailBlock < end; ++b) {
      const int lo = b * kTailBlock, hi = std::min(end, lo + kTailBlock);
      f16_to_f32_row(&h.values[static_cast<size_t>(lo) * d], rows.data(), static_cast<int64_t>(hi - lo) * d);
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int j = 0; j < hi - lo; ++j)
        for (int c = 0; c < d; ++c) sum[c] += rows[static_cast<size_t>(j) * d + c];
      for (int c = 0; c < d; ++c)
        h.block_means[static_cast<size_t>(b) * d + c] = quant::fp32_to_fp16(sum[c] / static_cast<float>(hi - lo));
    }
  }

  model::KvShape shape_;
  int capacity_;
  HcConfig cfg_;
  int groups_ = 0;
  int stored_ = 0;
  std::vector<HeadStore> heads_;
  std::vector<bool> calibrated_;
  std::vector<int> dense_left_;  // per (layer, KV head): dense decode steps before the next check, or kUnjudged
  int evicted_ = 0;                // positions evicted for good (value cap); slots = positions - evicted_ after them
  std::vector<int32_t> slot_pos_;  // value cap, or after an eviction: the position of each held slot (ascending)
  std::vector<float> mass_;        // value cap: attention mass each held slot drew, up to the last fold
  std::vector<Scratch> scratch_;
  AttendPhase phase_ = AttendPhase::Star;
};

}  // namespace

std::vector<float> rotated_calibration_keys(const model::KvShape& shape, uint64_t seed, const float* keys, int n,
                                            uint64_t stream, int rotation_span) {
  const int d = shape.head_dim;
  const int copies = shape.rope ? 1 + kRotations : 1;
  std::vector<float> out(static_cast<size_t>(n) * d * copies);
  std::copy_n(keys, static_cast<size_t>(n) * d, out.begin());
  if (copies == 1) return out;
  std::mt19937_64 rng(seed * 7919 + stream);
  std::uniform_int_distribution<int> offset(1, std::max(1, rotation_span - 1));
  std::vector<float> cs(shape.rope->n_rot());
  for (int c = 1; c < copies; ++c)
    for (int i = 0; i < n; ++i) {
      float* key = &out[(static_cast<size_t>(c) * n + i) * d];
      std::copy_n(&out[static_cast<size_t>(i) * d], d, key);
      shape.rope->angles(offset(rng), cs.data());
      shape.rope->rotate(key, 1, cs.data());
    }
  return out;
}

KeyCodebook train_key_codebook(const model::KvShape& shape, const HcConfig& config, const float* keys, int n, int layer,
                               int kvh, int rotation_span) {
  const int d = shape.head_dim;
  const uint64_t stream = static_cast<uint64_t>(layer) * 1000 + kvh;
  const std::vector<float> all = rotated_calibration_keys(shape, config.seed, keys, n, stream, rotation_span);
  return KeyCodebook::train(all.data(), static_cast<int64_t>(all.size() / d), d, key_groups(config.budget, d),
                            config.centroids, config.seed + stream);
}

std::unique_ptr<HcKvCache> make_hc_kv_cache(const model::KvShape& shape, int capacity, const HcConfig& config) {
  auto cache = std::make_unique<Cache>(shape, capacity, config);
  if (config.codebook_source == CodebookSource::Preset && key_groups(config.budget, shape.head_dim) > 0 && config.codebooks)
    cache->install_preset_codebooks();
  return cache;
}

std::unique_ptr<HcKvCache> make_hc_kv_cache_from_snapshot(const SnapshotReader& in, int capacity, int64_t keep_tokens,
                                                          bool map_values, const HcConfig* settings) {
  return Cache::from_snapshot(in, capacity, keep_tokens, map_values, settings);
}

}  // namespace hcattn::kv
