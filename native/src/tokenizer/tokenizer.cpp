// Llama-3 byte-level BPE with llama.cpp's exact behaviour (FORMATS.md §3):
//   text → special-token partition → per raw fragment: UTF-8 → code points → llama3 pre-tokenizer →
//   per pre-token: whole-word vocabulary hit (ignore_merges) or BPE over its bytes → token ids.
//
// Working in raw bytes. Vocabulary strings are stored through the GPT-2 byte→code point map ("Ġ" is
// the space byte). Instead of mapping every pre-token into that alphabet, each vocabulary entry and merge
// is mapped back to raw bytes once at load time; a lookup of raw bytes then gives exactly what a lookup
// of the mapped text would, because the map is a bijection between bytes and 256 code points.
//
// BPE symbols are interned byte strings (every single byte, every merge operand and result), so a merge
// is a hash lookup on two integers and a symbol's token id is precomputed.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "gguf/gguf.h"
#include "tokenizer/hash_tables.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace hcattn {

namespace {

using tokenizer::BytesMap;
using tokenizer::MergeMap;

constexpr Token kNoToken = -1;

// Token attributes (llama.cpp's llama_token_attr bits that matter here).
enum TokenAttr : uint8_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
};

uint8_t attr_from_token_type(int32_t type) {
  switch (type) {
    case 1: return kAttrNormal;
    case 2: return kAttrUnknown;
    case 3: return kAttrControl;
    case 4: return kAttrUserDefined;
    case 5: return kAttrUnused;
    case 6: return kAttrByte;
    default: return kAttrUndefined;
  }
}

// Pre-tokenizer names llama.cpp runs with the Llama-3 splitter and ignore_merges.
bool is_llama3_pre(const std::string& pre) {
  static const char* const kNames[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1",
                                       "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return pre == n; });
}

// Token texts llama.cpp treats as end of generation (and forces to control type) wherever they occur in
// a vocabulary.
const char* const kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "[e~["};

// When a vocabulary does not name its end-of-turn / end-of-message / fill-in-the-middle tokens, llama.cpp
// finds them by these texts and forces them to control type.
const char* const kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                 "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                 "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                 "<end_of_utterance>"};
const char* const kEomTexts[] = {"<|eom_id|>"};
const char* const kFimPreTexts[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
                                    "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"};
const char* const kFimSufTexts[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                    "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>",
                                    "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"};
const char* const kFimMidTexts[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
                                    "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"};
const char* const kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const char* const kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
const char* const kFimSepTexts[] = {"<|file_sep|>"};
// Texts llama.cpp always treats as user-defined (matched as text even without special parsing).
const char* const kForcedUserDefinedTexts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

// The GPT-2 byte ↔ code point map (FORMATS.md §3.3).
struct ByteMap {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 0x144> cp_to_byte{};  // -1: not a byte's code point

  ByteMap() {
    cp_to_byte.fill(-1);
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      byte_to_cp[b] = printable(b) ? uint32_t(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }

  std::string encode(std::string_view raw) const {
    std::string out;
    out.reserve(raw.size() * 2);
    for (unsigned char b : raw) unicode::append_utf8(out, byte_to_cp[b]);
    return out;
  }

  // Raw bytes whose mapped form is exactly `text`; false when text has a code point outside the map or
  // is not shortest-form UTF-8 (then no byte string maps to it).
  bool decode(std::string_view text, std::string* raw) const {
    raw->clear();
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    for (size_t i = 0; i < text.size();) {
      size_t len = 0;
      const uint32_t cp = unicode::decode_utf8(s, text.size(), i, &len);
      if (cp >= cp_to_byte.size() || cp_to_byte[cp] < 0 || unicode::utf8_length(cp) != len) return false;
      if (cp == unicode::kReplacementChar) return false;
      raw->push_back(static_cast<char>(cp_to_byte[cp]));
      i += len;
    }
    return true;
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// Scratch space of one encode() call: the tokenizer itself stays immutable, so concurrent calls are safe.
struct EncodeState {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> cls;
  std::vector<uint32_t> offsets;  // byte offset of each code point, plus the end
  std::vector<uint32_t> ends;
  std::string normalized;
  // BPE
  struct Symbol {
    uint32_t sym;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  struct Bigram {
    int32_t rank;
    int32_t left;
    int32_t right;
    uint32_t left_sym;
    uint32_t right_sym;
    uint32_t result;
  };
  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
  // Pre-tokens that needed BPE → their ids (source files repeat identifiers a lot).
  BytesMap cache;
  std::vector<std::pair<uint32_t, uint32_t>> cache_entries;  // (offset, count) into cache_ids
  std::vector<Token> cache_ids;
  std::vector<Token> word_ids;
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(const TokenizerVocab& v);

  std::vector<Token> encode(std::string_view text, bool add_bos, bool parse_special) const override;
  std::string token_to_piece(Token id, bool special) const override;
  std::string decode(const std::vector<Token>& ids, bool special) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(texts_.size()); }
  Token bos() const override { return bos_; }
  Token eos() const override { return eos_; }
  bool is_end_of_generation(Token id) const override { return eog_.count(id) != 0; }

 private:
  struct SymbolInfo {
    Token token;              // the vocabulary entry equal to this byte string, or kNoToken
    uint32_t fallback_begin;  // when token is kNoToken: ids of its single characters in fallback_ids_
    uint32_t fallback_count;
  };
  struct Fragment {
    size_t begin;
    size_t end;
    Token special;  // kNoToken for raw text
  };

  uint32_t intern_symbol(std::string_view raw, BytesMap& interned, std::vector<std::string>& raw_of);
  void partition_specials(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  void encode_fragment(std::string_view text, EncodeState& st, std::vector<Token>& out) const;
  void encode_word(std::string_view word, EncodeState& st, std::vector<Token>& out) const;
  void bpe(std::string_view word, EncodeState& st, std::vector<Token>& out) const;
  void push_bigram(EncodeState& st, int32_t left, int32_t right) const;
  std::string piece_for_cache(Token id) const;

  std::vector<std::string> texts_;  // as stored in the file
  std::vector<uint8_t> attrs_;
  BytesMap raw_to_id_;  // raw bytes → id, for every entry whose text is a mapped byte string

  std::vector<SymbolInfo> symbols_;  // by interned symbol id
  std::vector<Token> fallback_ids_;
  std::array<uint32_t, 256> byte_symbol_{};
  MergeMap merges_;

  std::vector<Token> specials_;  // control / user-defined / unknown entries, longest text first
  bool any_user_defined_special_ = false;
  std::array<bool, 256> special_first_byte_{};

  std::vector<std::string> pieces_;  // token_to_piece(id, special=true)

  // BPE results shared by all calls: a repository's files repeat the same identifiers, and BPE is the
  // expensive path. Guarded by a mutex (encode runs on several threads at once) and bounded in size.
  static constexpr size_t kSharedCacheMaxIds = size_t(1) << 23;
  mutable std::mutex shared_mutex_;
  mutable BytesMap shared_index_;
  mutable std::vector<std::pair<uint32_t, uint32_t>> shared_entries_;  // (offset, count) into shared_ids_
  mutable std::vector<Token> shared_ids_;

  std::set<Token> eog_;
  Token bos_ = kNoToken;
  Token eos_ = kNoToken;
  bool add_bos_ = true;
  bool add_space_prefix_ = false;
};

uint32_t BpeTokenizer::intern_symbol(std::string_view raw, BytesMap& interned, std::vector<std::string>& raw_of) {
  const auto next = static_cast<int32_t>(raw_of.size());
  const int32_t id = interned.insert(raw, next);
  if (id == next) raw_of.emplace_back(raw);
  return static_cast<uint32_t>(id);
}

BpeTokenizer::BpeTokenizer(const TokenizerVocab& v)
    : raw_to_id_(v.tokens.size()), merges_(v.merges.size()) {
  if (v.model != "gpt2") {
    throw Error("tokenizer.ggml.model is '" + v.model +
                "': only 'gpt2' (byte-level BPE, as in Llama 3) is supported; use a Llama-3 GGUF");
  }
  if (!is_llama3_pre(v.pre)) {
    throw Error("tokenizer.ggml.pre is '" + v.pre +
                "': only the Llama-3 pre-tokenizer ('llama-bpe') is supported; use a Llama-3 GGUF");
  }
  if (v.tokens.empty()) throw Error("tokenizer.ggml.tokens is empty: the file has no vocabulary");
  if (v.tokens.size() > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer.ggml.tokens: too many entries");
  if (!v.token_types.empty() && v.token_types.size() < v.tokens.size()) {
    throw Error("tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) + " entries for " +
                std::to_string(v.tokens.size()) + " tokens");
  }
  const ByteMap& bm = byte_map();
  const auto n = static_cast<Token>(v.tokens.size());

  // Stored text → id; only needed while loading (texts named by llama.cpp's rules, byte fallbacks).
  BytesMap text_to_id(v.tokens.size());
  auto text_to_token = [&](std::string_view text) { return text_to_id.find(text); };
  texts_.resize(n);
  attrs_.resize(n);
  std::string raw;
  for (Token id = 0; id < n; ++id) {
    std::string text = v.tokens[id];
    if (text.empty()) text = "[EMPTY_" + std::to_string(id) + "]";  // llama.cpp's placeholder
    const Token first = text_to_id.insert(text, id);
    if (first != id) {
      throw Error("tokenizer.ggml.tokens: tokens " + std::to_string(first) + " and " + std::to_string(id) +
                  " have the same text; the vocabulary is broken");
    }
    if (bm.decode(text, &raw)) raw_to_id_.insert(raw, id);
    texts_[id] = std::move(text);
    attrs_[id] = v.token_types.empty() ? static_cast<uint8_t>(kAttrNormal) : attr_from_token_type(v.token_types[id]);
  }

  // Special ids: llama.cpp's defaults for gpt2 vocabularies (11, when in range), then the keys; an id
  // outside the vocabulary keeps the default.
  auto pick = [&](const std::optional<uint64_t>& key, Token fallback) -> Token {
    if (fallback >= n) fallback = kNoToken;
    return (key && *key < static_cast<uint64_t>(n)) ? static_cast<Token>(*key) : fallback;
  };
  bos_ = pick(v.bos_id, 11);
  eos_ = pick(v.eos_id, 11);
  Token eot = pick(v.eot_id, kNoToken);
  Token eom = pick(v.eom_id, kNoToken);
  Token fim_pre = pick(v.fim_pre_id, kNoToken);
  Token fim_suf = pick(v.fim_suf_id, kNoToken);
  Token fim_mid = pick(v.fim_mid_id, kNoToken);
  Token fim_pad = pick(v.fim_pad_id, kNoToken);
  Token fim_rep = pick(v.fim_rep_id, kNoToken);
  Token fim_sep = pick(v.fim_sep_id, kNoToken);
  add_bos_ = v.add_bos.value_or(true);
  add_space_prefix_ = v.add_space_prefix.value_or(false);

  // Unnamed roles found by text (lowest id when several texts are present) become control tokens.
  auto detect = [&](Token& slot, const char* const* begin, const char* const* end) {
    if (slot != kNoToken) return;
    for (const char* const* t = begin; t != end; ++t) {
      const Token id = text_to_token(*t);
      if (id != kNoToken && (slot == kNoToken || id < slot)) slot = id;
    }
    if (slot != kNoToken) attrs_[slot] |= kAttrControl;
  };
  detect(eot, std::begin(kEotTexts), std::end(kEotTexts));
  detect(eom, std::begin(kEomTexts), std::end(kEomTexts));
  detect(fim_pre, std::begin(kFimPreTexts), std::end(kFimPreTexts));
  detect(fim_suf, std::begin(kFimSufTexts), std::end(kFimSufTexts));
  detect(fim_mid, std::begin(kFimMidTexts), std::end(kFimMidTexts));
  detect(fim_pad, std::begin(kFimPadTexts), std::end(kFimPadTexts));
  detect(fim_rep, std::begin(kFimRepTexts), std::end(kFimRepTexts));
  detect(fim_sep, std::begin(kFimSepTexts), std::end(kFimSepTexts));

  for (const char* text : kEndOfGenerationTexts) {
    const Token id = text_to_token(text);
    if (id == kNoToken) continue;
    eog_.insert(id);
    attrs_[id] |= kAttrControl;
  }
  for (const char* text : kForcedUserDefinedTexts) {
    const Token id = text_to_token(text);
    if (id != kNoToken) attrs_[id] = kAttrUserDefined;
  }
  for (Token id : {fim_pad, fim_rep, fim_sep, eos_, eot, eom}) {
    if (id != kNoToken) eog_.insert(id);
  }

  // BPE symbols: the 256 single bytes, then every merge operand and result.
  BytesMap interned(v.merges.size() + 256);
  std::vector<std::string> symbol_raw;
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    byte_symbol_[b] = intern_symbol(std::string_view(&byte, 1), interned, symbol_raw);
  }
  std::string left_raw;
  std::string right_raw;
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) continue;  // cannot match any pair of non-empty symbols
    // An operand outside the byte alphabet can never be formed from text, so its merge never applies.
    if (!bm.decode(std::string_view(m).substr(0, space), &left_raw)) continue;
    if (!bm.decode(std::string_view(m).substr(space + 1), &right_raw)) continue;
    if (left_raw.empty() || right_raw.empty()) continue;
    const uint32_t left = intern_symbol(left_raw, interned, symbol_raw);
    const uint32_t right = intern_symbol(right_raw, interned, symbol_raw);
    const uint32_t result = intern_symbol(left_raw + right_raw, interned, symbol_raw);
    merges_.insert(left, right, MergeMap::Merge{static_cast<int32_t>(rank), result});
  }
  // Each symbol's token, or the single-character entries llama.cpp falls back to (looked up by the
  // individual bytes of the symbol's mapped text).
  symbols_.assign(symbol_raw.size(), SymbolInfo{kNoToken, 0, 0});
  for (size_t s = 0; s < symbols_.size(); ++s) {
    SymbolInfo& info = symbols_[s];
    info.token = raw_to_id_.find(symbol_raw[s]);
    if (info.token != kNoToken) continue;
    info.fallback_begin = static_cast<uint32_t>(fallback_ids_.size());
    for (char c : bm.encode(symbol_raw[s])) {
      const Token id = text_to_token(std::string_view(&c, 1));
      if (id != kNoToken) fallback_ids_.push_back(id);
    }
    info.fallback_count = static_cast<uint32_t>(fallback_ids_.size()) - info.fallback_begin;
  }

  // Special tokens are matched longest text first.
  for (Token id = 0; id < n; ++id) {
    if (attrs_[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      specials_.push_back(id);
      special_first_byte_[static_cast<unsigned char>(texts_[id][0])] = true;
      if (!(attrs_[id] & (kAttrControl | kAttrUnknown))) any_user_defined_special_ = true;
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](Token a, Token b) { return texts_[a].size() > texts_[b].size(); });

  pieces_.resize(n);
  for (Token id = 0; id < n; ++id) pieces_[id] = piece_for_cache(id);
}

// A token's bytes as llama.cpp's token_to_piece gives them with special=true.
std::string BpeTokenizer::piece_for_cache(Token id) const {
  const uint8_t attr = attrs_[id];
  const std::string& text = texts_[id];
  if (attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return text;
  if (attr & kAttrNormal) {
    const ByteMap& bm = byte_map();
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    std::string out;
    for (size_t i = 0; i < text.size();) {
      size_t len = 0;
      const uint32_t cp = unicode::decode_utf8(s, text.size(), i, &len);
      i += len;
      if (cp < bm.cp_to_byte.size() && bm.cp_to_byte[cp] >= 0) {
        out.push_back(static_cast<char>(bm.cp_to_byte[cp]));
        continue;
      }
      // A code point outside the byte alphabet: llama.cpp spells it out.
      std::string utf8;
      unicode::append_utf8(utf8, cp);
      out += "[UNK_BYTE_0x";
      static const char kHex[] = "0123456789abcdef";
      for (unsigned char b : utf8) {
        out.push_back(kHex[b >> 4]);
        out.push_back(kHex[b & 15]);
      }
      out += text + "]";
    }
    return out;
  }
  if (attr & kAttrByte) {
    // "<0xAB>" style byte tokens.
    const std::string hex = text.size() > 3 ? text.substr(3, 2) : std::string();
    return std::string(1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
  }
  return std::string();
}

std::string BpeTokenizer::token_to_piece(Token id, bool special) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size()) + ")");
  }
  if (!special && (attrs_[id] & (kAttrUnknown | kAttrControl))) return std::string();
  return pieces_[id];
}

std::string BpeTokenizer::decode(const std::vector<Token>& ids, bool special) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], special);
    // With a space-prefix vocabulary the first piece loses the space the encoder would have added.
    if (i == 0 && add_space_prefix_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    text += piece;
  }
  if (text.empty()) return text;

  // llama.cpp's clean_up_tokenization_spaces, three passes over the bytes.
  // 1. " ?", " !", " .", " ," lose the space.
  std::string a;
  a.reserve(text.size());
  a.push_back(text[0]);
  for (size_t i = 1; i < text.size(); ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a.push_back(x);
  }
  // 2. " ' " becomes "'"; the consumed trailing space no longer counts as the previous character.
  std::string b;
  b.reserve(a.size());
  b.push_back(a[0]);
  bool prev_consumed = false;
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    const char prev = prev_consumed ? '\0' : a[i - 1];
    prev_consumed = false;
    if (x == '\'' && i + 1 < a.size() && prev == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      b.push_back(x);
      ++i;
      prev_consumed = true;
      continue;
    }
    b.push_back(x);
  }
  // 3. " 's", " 'm", " 're", " 've" lose the space.
  std::string c;
  c.reserve(b.size());
  c.push_back(b[0]);
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const bool s_or_m = x1 == 's' || x1 == 'm';
      const bool re_or_ve = !s_or_m && x1 != 't' && x1 != 'd' && i + 2 < b.size() && b[i + 2] == 'e' &&
                            (x1 == 'r' || x1 == 'v');
      if (s_or_m || re_or_ve) c.pop_back();
    }
    c.push_back(x);
  }
  return c;
}

// Splits text at special-token occurrences the way llama.cpp's partition does: candidates in order
// (longest first), each taking its leftmost non-overlapping occurrences inside text not yet claimed.
void BpeTokenizer::partition_specials(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  out.clear();
  const bool any_candidate = parse_special ? !specials_.empty() : any_user_defined_special_;
  if (!any_candidate || text.empty()) {
    if (!text.empty()) out.push_back(Fragment{0, text.size(), kNoToken});
    return;
  }
  // Every occurrence of every candidate: (order index, position). Found with one pass over the text,
  // testing only positions whose byte starts some candidate.
  std::unordered_map<uint16_t, std::vector<uint32_t>> by_prefix;  // first two bytes → candidate order
  std::vector<uint32_t> one_byte;
  for (uint32_t k = 0; k < specials_.size(); ++k) {
    const Token id = specials_[k];
    if (!parse_special && (attrs_[id] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& t = texts_[id];
    if (t.size() == 1) {
      one_byte.push_back(k);
    } else {
      by_prefix[static_cast<uint16_t>((static_cast<unsigned char>(t[0]) << 8) | static_cast<unsigned char>(t[1]))]
          .push_back(k);
    }
  }
  std::vector<std::pair<uint32_t, size_t>> hits;
  for (size_t p = 0; p < text.size(); ++p) {
    const auto b0 = static_cast<unsigned char>(text[p]);
    if (!special_first_byte_[b0]) continue;
    for (uint32_t k : one_byte) {
      if (static_cast<unsigned char>(texts_[specials_[k]][0]) == b0) hits.emplace_back(k, p);
    }
    if (p + 1 >= text.size()) continue;
    const auto key = static_cast<uint16_t>((b0 << 8) | static_cast<unsigned char>(text[p + 1]));
    const auto it = by_prefix.find(key);
    if (it == by_prefix.end()) continue;
    for (uint32_t k : it->second) {
      const std::string& t = texts_[specials_[k]];
      if (text.compare(p, t.size(), t) == 0) hits.emplace_back(k, p);
    }
  }
  if (hits.empty()) {
    out.push_back(Fragment{0, text.size(), kNoToken});
    return;
  }
  std::sort(hits.begin(), hits.end());
  std::map<size_t, std::pair<size_t, Token>> claimed;  // begin → (end, token)
  for (const auto& [k, pos] : hits) {
    const Token id = specials_[k];
    const size_t end = pos + texts_[id].size();
    auto next = claimed.lower_bound(pos);
    if (next != claimed.end() && next->first < end) continue;
    if (next != claimed.begin() && std::prev(next)->second.first > pos) continue;
    claimed.emplace(pos, std::make_pair(end, id));
  }
  size_t at = 0;
  for (const auto& [begin, span] : claimed) {
    if (begin > at) out.push_back(Fragment{at, begin, kNoToken});
    out.push_back(Fragment{begin, span.first, span.second});
    at = span.first;
  }
  if (at < text.size()) out.push_back(Fragment{at, text.size(), kNoToken});
}

std::vector<Token> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<Token> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && add_bos_) {
    if (bos_ == kNoToken) throw Error("the vocabulary asks for a BOS token but has none (tokenizer.ggml.bos_token_id)");
    out.push_back(bos_);
  }
  if (text.size() > UINT32_MAX / 2) throw Error("text too large to tokenize at once (over 2 GiB); split it");
  std::vector<Fragment> fragments;
  partition_specials(text, parse_special, fragments);
  EncodeState st;
  for (const Fragment& f : fragments) {
    if (f.special != kNoToken) {
      out.push_back(f.special);
    } else {
      encode_fragment(text.substr(f.begin, f.end - f.begin), st, out);
    }
  }
  return out;
}

void BpeTokenizer::encode_fragment(std::string_view text, EncodeState& st, std::vector<Token>& out) const {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  st.cps.clear();
  st.cls.clear();
  st.offsets.clear();
  // Code points as llama.cpp decodes them. Pre-tokens are re-encoded from code points there, so bytes
  // that do not decode as they stand (invalid → U+FFFD, overlong forms → shortest form) are rewritten.
  bool as_is = true;
  for (size_t i = 0; i < n;) {
    st.offsets.push_back(static_cast<uint32_t>(i));
    if (s[i] < 0x80) {
      st.cps.push_back(s[i]);
      st.cls.push_back(unicode::kAsciiClass[s[i]]);
      ++i;
      continue;
    }
    size_t len = 0;
    const uint32_t cp = unicode::decode_utf8(s, n, i, &len);
    if (unicode::utf8_length(cp) != len) as_is = false;
    st.cps.push_back(cp);
    st.cls.push_back(unicode::class_of_non_ascii(cp));
    i += len;
  }
  std::string_view bytes = text;
  if (as_is) {
    st.offsets.push_back(static_cast<uint32_t>(n));
  } else {
    st.normalized.clear();
    st.offsets.clear();
    for (uint32_t cp : st.cps) {
      st.offsets.push_back(static_cast<uint32_t>(st.normalized.size()));
      unicode::append_utf8(st.normalized, cp);
    }
    st.offsets.push_back(static_cast<uint32_t>(st.normalized.size()));
    bytes = st.normalized;
  }

  st.ends.clear();
  tokenizer::split_llama3(st.cps.data(), st.cls.data(), st.cps.size(), st.ends);
  uint32_t begin = 0;
  for (uint32_t end : st.ends) {
    encode_word(bytes.substr(st.offsets[begin], st.offsets[end] - st.offsets[begin]), st, out);
    begin = end;
  }
}

void BpeTokenizer::encode_word(std::string_view word, EncodeState& st, std::vector<Token>& out) const {
  // ignore_merges: a pre-token that is itself a vocabulary entry is emitted as is.
  const Token whole = raw_to_id_.find(word);
  if (whole != kNoToken) {
    out.push_back(whole);
    return;
  }
  const int32_t cached = st.cache.find(word);
  if (cached != BytesMap::kAbsent) {
    const auto [offset, count] = st.cache_entries[cached];
    out.insert(out.end(), st.cache_ids.begin() + offset, st.cache_ids.begin() + offset + count);
    return;
  }
  st.word_ids.clear();
  bool shared_hit = false;
  {
    std::lock_guard<std::mutex> lock(shared_mutex_);
    const int32_t entry = shared_index_.find(word);
    if (entry != BytesMap::kAbsent) {
      const auto [offset, count] = shared_entries_[entry];
      st.word_ids.assign(shared_ids_.begin() + offset, shared_ids_.begin() + offset + count);
      shared_hit = true;
    }
  }
  if (!shared_hit) {
    bpe(word, st, st.word_ids);
    std::lock_guard<std::mutex> lock(shared_mutex_);
    if (shared_ids_.size() + st.word_ids.size() <= kSharedCacheMaxIds &&
        shared_index_.insert(word, static_cast<int32_t>(shared_entries_.size())) ==
            static_cast<int32_t>(shared_entries_.size())) {
      shared_entries_.emplace_back(static_cast<uint32_t>(shared_ids_.size()), static_cast<uint32_t>(st.word_ids.size()));
      shared_ids_.insert(shared_ids_.end(), st.word_ids.begin(), st.word_ids.end());
    }
  }
  st.cache.insert(word, static_cast<int32_t>(st.cache_entries.size()));
  st.cache_entries.emplace_back(static_cast<uint32_t>(st.cache_ids.size()), static_cast<uint32_t>(st.word_ids.size()));
  st.cache_ids.insert(st.cache_ids.end(), st.word_ids.begin(), st.word_ids.end());
  out.insert(out.end(), st.word_ids.begin(), st.word_ids.end());
}

// Lowest rank first, then leftmost (llama.cpp's queue order).
inline bool bigram_after(const EncodeState::Bigram& a, const EncodeState::Bigram& b) {
  return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

void BpeTokenizer::push_bigram(EncodeState& st, int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return;
  const uint32_t ls = st.symbols[left].sym;
  const uint32_t rs = st.symbols[right].sym;
  const MergeMap::Merge* m = merges_.find(ls, rs);
  if (m == nullptr) return;
  st.heap.push_back(EncodeState::Bigram{m->rank, left, right, ls, rs, m->result});
  std::push_heap(st.heap.begin(), st.heap.end(), bigram_after);
}

void BpeTokenizer::bpe(std::string_view word, EncodeState& st, std::vector<Token>& out) const {
  const auto n = static_cast<int32_t>(word.size());
  st.symbols.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    st.symbols[i] = EncodeState::Symbol{byte_symbol_[static_cast<unsigned char>(word[i])], i - 1,
                                        i + 1 < n ? i + 1 : -1, true};
  }
  st.heap.clear();
  for (int32_t i = 1; i < n; ++i) push_bigram(st, i - 1, i);
  while (!st.heap.empty()) {
    std::pop_heap(st.heap.begin(), st.heap.end(), bigram_after);
    const EncodeState::Bigram bg = st.heap.back();
    st.heap.pop_back();
    EncodeState::Symbol& left = st.symbols[bg.left];
    EncodeState::Symbol& right = st.symbols[bg.right];
    // Stale when either side has changed since the pair was queued.
    if (!left.alive || !right.alive || left.sym != bg.left_sym || right.sym != bg.right_sym) continue;
    left.sym = bg.result;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) st.symbols[right.next].prev = bg.left;
    push_bigram(st, left.prev, bg.left);
    push_bigram(st, bg.left, left.next);
  }
  for (int32_t i = 0; i != -1 && n > 0; i = st.symbols[i].next) {
    const SymbolInfo& info = symbols_[st.symbols[i].sym];
    if (info.token != kNoToken) {
      out.push_back(info.token);
    } else {
      out.insert(out.end(), fallback_ids_.begin() + info.fallback_begin,
                 fallback_ids_.begin() + info.fallback_begin + info.fallback_count);
    }
  }
}

// Reads a string-array key; nullptr when absent, an error when it has another type.
const gguf::Value* string_array(const gguf::File& file, const std::string& key) {
  const gguf::Value* v = file.find(key);
  if (v == nullptr) return nullptr;
  if (v->type != gguf::ValueType::ARRAY || v->elem_type != gguf::ValueType::STRING) {
    throw Error(file.path() + ": " + key + " must be an array of strings");
  }
  return v;
}

std::optional<uint64_t> optional_id(const gguf::File& file, const std::string& key) {
  if (file.find(key) == nullptr) return std::nullopt;
  return file.get_uint(key);
}

std::optional<bool> optional_bool(const gguf::File& file, const std::string& key) {
  if (file.find(key) == nullptr) return std::nullopt;
  return file.get_bool(key);
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(const TokenizerVocab& vocab) {
  return std::make_unique<BpeTokenizer>(vocab);
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  TokenizerVocab v;
  if (file.find("tokenizer.ggml.model") == nullptr) {
    throw Error(file.path() + ": missing tokenizer.ggml.model; the file has no tokenizer (is it a model GGUF?)");
  }
  v.model = file.get_string("tokenizer.ggml.model");
  v.pre = file.get_string_or("tokenizer.ggml.pre", "");
  const gguf::Value* tokens = string_array(file, "tokenizer.ggml.tokens");
  if (tokens == nullptr) throw Error(file.path() + ": missing tokenizer.ggml.tokens (the vocabulary)");
  v.tokens.assign(tokens->strs.begin(), tokens->strs.end());
  if (const gguf::Value* types = file.find("tokenizer.ggml.token_type")) {
    if (types->type != gguf::ValueType::ARRAY || types->elem_type != gguf::ValueType::I32) {
      throw Error(file.path() + ": tokenizer.ggml.token_type must be an array of int32");
    }
    v.token_types.assign(types->ints.begin(), types->ints.end());
  }
  const gguf::Value* merges = string_array(file, "tokenizer.ggml.merges");
  if (merges == nullptr) throw Error(file.path() + ": missing tokenizer.ggml.merges (the BPE merge list)");
  v.merges.assign(merges->strs.begin(), merges->strs.end());

  v.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  v.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  v.eot_id = optional_id(file, "tokenizer.ggml.eot_token_id");
  v.eom_id = optional_id(file, "tokenizer.ggml.eom_token_id");
  v.fim_pre_id = optional_id(file, "tokenizer.ggml.fim_pre_token_id");
  v.fim_suf_id = optional_id(file, "tokenizer.ggml.fim_suf_token_id");
  v.fim_mid_id = optional_id(file, "tokenizer.ggml.fim_mid_token_id");
  v.fim_pad_id = optional_id(file, "tokenizer.ggml.fim_pad_token_id");
  v.fim_rep_id = optional_id(file, "tokenizer.ggml.fim_rep_token_id");
  v.fim_sep_id = optional_id(file, "tokenizer.ggml.fim_sep_token_id");
  // Older files name the fill-in-the-middle ids this way; llama.cpp lets them override.
  if (auto id = optional_id(file, "tokenizer.ggml.prefix_token_id")) v.fim_pre_id = id;
  if (auto id = optional_id(file, "tokenizer.ggml.suffix_token_id")) v.fim_suf_id = id;
  if (auto id = optional_id(file, "tokenizer.ggml.middle_token_id")) v.fim_mid_id = id;
  v.add_bos = optional_bool(file, "tokenizer.ggml.add_bos_token");
  v.add_space_prefix = optional_bool(file, "tokenizer.ggml.add_space_prefix");
  try {
    return from_vocab(v);
  } catch (const Error& e) {
    throw Error(file.path() + ": " + e.what());
  }
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  // Content is trimmed of ASCII whitespace at both ends, as llama.cpp's template does.
  auto trim = [](const std::string& s) {
    size_t b = 0;
    size_t e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
  };
  std::string out;
  for (const ChatMessage& m : messages) {
    out += "<|start_header_id|>";
    out += m.role;
    out += "<|end_header_id|>\n\n";
    out += trim(m.content);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace hcattn
