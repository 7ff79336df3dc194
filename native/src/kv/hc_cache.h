// The HCAttention KV cache behind the model's KvCache interface.
//
// Tiers, per layer and KV head:
//   fast: key codes (g codes per token, 25%: g = d/2, 12.5%: g = d/4; 16-bit code words, kept in 12 bits
//         with up to 256 centroids, kv/code_tiles.h) with their f16 codebooks, or f16 keys at 50%; the
//         mean value of each block of 64 positions (tail estimate);
//   host: f16 values, and f16 keys for exact re-scoring of the selected tokens (when rescore is on).
// Decode: per KV head, approximate scores from the codes (LUT), top-p selection with sinks and the recent
// window kept, exact re-scoring of the selected keys, weighted sum of their values; a head whose selection
// kept nearly every token attends exactly to all of them for its next steps (dense steps), re-judged on
// their exact scores (a head's first step in a context of up to 32k positions is such a dense step).
// Prefill: queries of a chunk either use the same selection (star_block == 0 or the Global phase) or the
// star-attention rule (Star phase): exact attention to the anchor block and to their own aligned block of
// star_block positions.
//
// Value cap (HcConfig::value_cap): past it, the tokens that drew the least attention (accumulated attention
// mass per later position, see Eviction) are evicted for good, so the tiers hold a bounded number of positions.
//
// Invariants: the tiers hold positions [0, n) in order, except those evicted for good (none without a
// value cap); every evicted position lies before every position stored after its eviction. The codebooks
// of a layer are preset, or trained once on exactly the keys of the first calibration_tokens positions
// held by that layer, so every cached value is a function of the token prefix (and the preset codebooks)
// alone: a context truncated to a segment boundary and prefilled again equals a fresh prefill (when
// nothing was evicted). Before a layer is calibrated its queries attend to every key exactly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <vector>

#include "kv/codebook.h"
#include "kv/selection.h"
#include "model/kv_cache.h"

namespace hcattn::kv {

enum class KeyBudget { Half, Quarter, Eighth };  // fast tier relative to f16 K+V: 50%, 25%, 12.5%

// "50%", "25%", "12.5%"; throws hcattn::Error for anything else.
KeyBudget parse_key_budget(const std::string& text);
const char* key_budget_name(KeyBudget b);
// Codebook groups g per key at this budget (0 at 50%, where keys stay f16).
int key_groups(KeyBudget b, int head_dim);

// Where a cache's key codebooks come from.
//   Context: trained on the context's own first calibration_tokens keys (plus rotated copies) when it
//            reaches that many positions; until then its layers attend exactly.
//   Preset:  trained once per model on a fixed text (engine/builtin_codebooks.h) and given to the cache
//            (HcConfig::codebooks); every layer uses codes from position 0.
enum class CodebookSource : uint8_t { Context = 0, Preset = 1 };

// Which tokens a value cap evicts first. The attention mass of a token is the sum of the weights every
// query head of every layer gave it (selected or attended exactly) since it was stored.
//   MeanMass: the least mass per position stored after it (the default: accumulated mass alone favours
//             old tokens, which had more queries to draw it from);
//   Mass:     the least accumulated mass (H2O);
//   Oldest:   the oldest (a sliding window after the sinks, as StreamingLLM).
// stories260K at 25% (test_kv_fidelity, 512 positions, recent 16), top-1 agreement with full / mean KL:
// cap 384: MeanMass 93.9% / 0.064, Mass 90.9% / 0.156, Oldest 87.7% / 0.343;
// cap 256: MeanMass 75.7% / 0.53, Mass 71.6% / 0.79, Oldest 67.8% / 1.20.
enum class Eviction : uint8_t { MeanMass, Mass, Oldest };

struct HcConfig {
  KeyBudget budget = KeyBudget::Quarter;
  int centroids = 256;            // c per group codebook
  SelectParams select{0.995f, 4, 64, 0, 3.0f};
  bool rescore = true;            // exact scores for the selected tokens from host-tier f16 keys
  bool tail = true;               // estimate the unselected tokens' share from per-block mean values
  // Selection also keeps every token whose score bound (LUT score + bound_scale * sum over groups of
  // |q_group| * residual radius, codebook.h) reaches the top-p cut. 1: the worst-case bound; 0: off.
  float bound_scale = 1.0f;
  // One selection per KV head and step, shared by its query heads (the union of what they attend to),
  // instead of one per query head; their scoring reads the codes once. Measured better on both counts
  // (stories260K 12.5%: top-1 99.7% vs 99.5%, KL 1.3e-4 vs 3.4e-4; decode step at 64k tokens, 8 query heads
  // on 2 KV heads: 101 vs 132 ms; at 50% too: 99.73% vs 99.47%, KL 1.6e-5 vs 2.2e-5), so on by default.
  bool gqa_shared = true;
  // Dense decode steps: when a decode step's GQA-shared selection for a (layer, KV head) kept at least this
  // share of its tokens, that head's next dense_probe - 1 decode steps attend exactly to every token (each
  // key and value row read once for its query heads) and skip the scoring and selection, which then cost
  // more than the rows they would leave out. The last of them runs the same selection on its exact scores:
  // if it still keeps this share, another such run follows, else the next step selects again (a head stays
  // dense without a selecting step every dense_probe steps, and leaves within dense_probe - 1 steps of
  // turning sharp). Off at 0.
  float dense_share = 0.9f;
  int dense_probe = 16;
  // Most positions the tiers hold (0: every position up to the capacity). Before a chunk would pass it,
  // tokens are evicted for good in `eviction` order, never the first select.sinks positions nor the last
  // select.recent ones, down to value_cap - value_cap / 16 held positions (so that decode evicts once per
  // value_cap / 16 tokens rather than at every step). Positions keep counting past it: a context of n
  // positions holds at most value_cap of them; a snapshot saves the ones it holds (kv/snapshot.h).
  int value_cap = 0;
  Eviction eviction = Eviction::MeanMass;
  int calibration_tokens = 1024;  // keys that train each layer's codebooks
  int star_block = 0;             // prefill star-attention block; 0 = prefill queries use selection too
  CodebookSource codebook_source = CodebookSource::Context;
  // Preset: one codebook per (layer, KV head), index layer * n_head_kv + kvh (not saved: a snapshot holds
  // its codebooks in its own sections). Null: installed later (HcKvCache::install_codebooks).
  std::shared_ptr<const std::vector<KeyCodebook>> codebooks;
  uint64_t seed = 1;
};

using TierBytes = model::KvBytes;

// Tokens the top-p selection kept, and tokens it chose from, summed over its calls (one per query head,
// or per KV head with gqa_shared, layer and position); a dense decode step counts every token as kept.
struct SelectionCounts {
  int64_t selected = 0;
  int64_t candidates = 0;
  int64_t decode_steps = 0;  // (layer, KV head) decode steps with GQA-shared selection (the default)
  int64_t dense_steps = 0;   // of which attended every token without selecting (HcConfig::dense_share)
};

// How queries attend when star_block > 0 (with star_block == 0 both are Global).
//   Star:   exact attention to the anchor (the first star_block positions) and to the query's own aligned
//           block of star_block positions,
//           so a prefill costs O(n * star_block), and every position's result is independent of how
//           the tokens were split into calls and chunks.
//   Global: the top-p selection over the whole cache (decode, and prefill of a question).
enum class AttendPhase { Star, Global };

class SnapshotWriter;
class SnapshotReader;

class HcKvCache : public model::KvCache {
 public:
  virtual int stored_tokens() const = 0;  // highest position stored + 1 (layer 0)
  virtual bool calibrated(int layer) const = 0;
  virtual const model::KvShape& shape() const = 0;
  virtual const HcConfig& config() const = 0;
  // SHA-256 (hex) of every calibrated layer's codebooks, in snapshot order (kv/snapshot.h).
  virtual std::string codebook_digest() const = 0;
  // Bytes of keys and values read straight from a snapshot file (make_hc_kv_cache_from_snapshot with
  // map_values), not held in RAM.
  virtual size_t mapped_bytes() const = 0;
  // What the selection kept since the cache was made (read between steps).
  virtual SelectionCounts selection_counts() const = 0;
  // Positions evicted for good to stay within HcConfig::value_cap (stored_tokens() - evicted_tokens()
  // are held).
  virtual int64_t evicted_tokens() const = 0;
  // The positions the tiers hold, ascending (every position in [0, stored_tokens()) until an eviction).
  virtual std::vector<int32_t> held_positions() const = 0;
  // A Preset cache made without its codebooks (they are trained later, off the caller's thread) must get
  // them by install_codebooks() before it stores anything.
  virtual bool needs_codebooks() const = 0;
  virtual void install_codebooks(const std::shared_ptr<const std::vector<KeyCodebook>>& books) = 0;
  // Every (layer, KV head)'s codebook (layer * n_head_kv + kvh), or none unless every layer is calibrated.
  virtual std::vector<KeyCodebook> codebooks() const = 0;
  // Writes the per-layer snapshot sections of positions [0, stored_tokens()). Every layer must hold
  // them (save between steps, not inside one).
  virtual void save(SnapshotWriter& out) const = 0;
  // The rule the following attend() calls use until the next call (Star at first). The context sets it
  // per call: Star for a prefill of the repository prefix, Global for questions and every decode step.
  virtual void set_phase(AttendPhase phase) = 0;
};

std::unique_ptr<HcKvCache> make_hc_kv_cache(const model::KvShape& shape, int capacity, const HcConfig& config);

// The codebook of one (layer, KV head) trained on n post-RoPE keys (n, d) plus copies of them rotated to
// random positions in [1, rotation_span): post-RoPE keys of the first positions cover only a small arc of
// each slow RoPE pair's circle, keys met later lie elsewhere on it, and a codebook trained on the first
// positions alone misplaces them (stories260K: top-1 agreement 55% without). Deterministic in its inputs.
KeyCodebook train_key_codebook(const model::KvShape& shape, const HcConfig& config, const float* keys, int n, int layer,
                               int kvh, int rotation_span);

// A cache holding positions [0, keep_tokens) of a validated snapshot, with its shape and config and
// clone_prefix semantics: codebooks are kept only when keep_tokens >= calibration_tokens (or preset).
// map_values: keys and values of the kept positions are read from the file's pages instead of being
// copied into RAM; new positions go to RAM. The file must not be rewritten in place while the cache lives
// (replacing it by a rename, as save_snapshot does, or deleting it is safe: the mapping keeps the old file).
// settings: the context's own choice of what a snapshot does not record (tail estimate, dense decode
// steps, value cap); null: the defaults.
std::unique_ptr<HcKvCache> make_hc_kv_cache_from_snapshot(const SnapshotReader& in, int capacity, int64_t keep_tokens,
                                                          bool map_values = false, const HcConfig* settings = nullptr);

}  // namespace hcattn::kv
