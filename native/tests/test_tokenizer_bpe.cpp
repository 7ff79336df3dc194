// BPE mechanics on a small hand-made vocabulary (no fixture files): merge priority by rank then
// position, stale pairs, ignore_merges, the pre-tokenizer's splits, special tokens, byte mapping,
// invalid UTF-8, pieces and decode clean-up, chat template.
#include <string>
#include <vector>

#include "common/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using hcattn::Token;
using hcattn::Tokenizer;
using hcattn::TokenizerVocab;

namespace {

// Byte-level text of raw bytes (GPT-2 map): printable bytes stay, the others move to U+0100 + n.
std::string mapped(const std::string& raw) {
  std::string out;
  for (unsigned char b : raw) {
    uint32_t cp = b;
    if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
      uint32_t n = 0;
      for (int x = 0; x < b; ++x) {
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++n;
      }
      cp = 256 + n;
    }
    hcattn::unicode::append_utf8(out, cp);
  }
  return out;
}

struct Vocab {
  TokenizerVocab v;
  Token add(const std::string& raw, int32_t type = 1) {
    v.tokens.push_back(type == 1 ? mapped(raw) : raw);
    v.token_types.push_back(type);
    return static_cast<Token>(v.tokens.size() - 1);
  }
  void merge(const std::string& left, const std::string& right) { v.merges.push_back(mapped(left) + " " + mapped(right)); }
};

// Ids 0..255: the single bytes, in byte order, so that byte b has id b.
Vocab byte_vocab() {
  Vocab voc;
  for (int b = 0; b < 256; ++b) voc.add(std::string(1, static_cast<char>(b)));
  return voc;
}

bool same(const std::vector<Token>& got, const std::vector<Token>& want) {
  if (got == want) return true;
  std::fprintf(stderr, "  got:");
  for (Token t : got) std::fprintf(stderr, " %d", t);
  std::fprintf(stderr, "\n  want:");
  for (Token t : want) std::fprintf(stderr, " %d", t);
  std::fprintf(stderr, "\n");
  return false;
}

void test_merge_order() {
  Vocab voc = byte_vocab();
  const Token ab = voc.add("ab");
  const Token bc = voc.add("bc");
  const Token abc = voc.add("abc");
  const Token aa = voc.add("aa");
  const Token aaa = voc.add("aaa");
  // Rank 0: "b c" beats "a b" in "abc" although "a b" is leftmost.
  voc.merge("b", "c");
  voc.merge("a", "b");
  voc.merge("a", "bc");
  voc.merge("a", "a");
  voc.merge("aa", "a");
  voc.v.bos_id = 256;
  auto tok = Tokenizer::from_vocab(voc.v);
  // "abc" is itself a vocabulary entry: ignore_merges emits it whole.
  CHECK(same(tok->encode("abc", false, false), {abc}));
  // "abcab": no whole-word hit; bc (rank 0) first, then a+bc (rank 2) and a+b (rank 1).
  CHECK(same(tok->encode("abcab", false, false), {abc, ab}));
  (void)bc;
  // Equal ranks resolve leftmost first: "aaaa" → aa+aa (then "aa a" cannot apply) → aa aa.
  CHECK(same(tok->encode("aaaa", false, false), {aa, aa}));
  // "aaaaa": aa aa a → "aa a" (rank 4) merges the leftmost aa with... the pair (aa, aa) has no merge;
  // the last "aa a" becomes aaa.
  CHECK(same(tok->encode("aaaaa", false, false), {aa, aaa}));
  CHECK(tok->vocab_size() == 261);
}

void test_stale_pairs() {
  // "xyz" with merges x+y (rank 1) and y+z (rank 0): y+z wins, the queued x+y is stale and skipped.
  Vocab voc = byte_vocab();
  const Token yz = voc.add("yz");
  voc.add("xy");
  voc.merge("y", "z");
  voc.merge("x", "y");
  auto tok = Tokenizer::from_vocab(voc.v);
  CHECK(same(tok->encode("xyzq", false, false), {'x', yz, 'q'}));
}

void test_pretokenizer_splits() {
  // Only byte tokens and no merges: each pre-token is visible as its byte ids only where a pre-token is
  // a single vocabulary entry. Add whole-word entries so the split points show.
  Vocab voc = byte_vocab();
  const Token hello = voc.add("Hello");
  const Token sp_world = voc.add(" world");
  const Token s_ = voc.add("'s");
  const Token S_ = voc.add("'S");
  const Token re = voc.add("'re");
  const Token d123 = voc.add("123");
  const Token d45 = voc.add("45");
  const Token sp3 = voc.add("   ");
  const Token nl2 = voc.add("\n\n");
  const Token sp_bang = voc.add(" !!");
  auto tok = Tokenizer::from_vocab(voc.v);
  CHECK(same(tok->encode("Hello world", false, false), {hello, sp_world}));
  CHECK(same(tok->encode("Hello's", false, false), {hello, s_}));
  CHECK(same(tok->encode("Hello'S", false, false), {hello, S_}));
  CHECK(same(tok->encode("Hello're", false, false), {hello, re}));
  // Digits in chunks of three.
  CHECK(same(tok->encode("12345", false, false), {d123, d45}));
  // A space run before a word keeps its last space for the word.
  CHECK(same(tok->encode("    world", false, false), {sp3, sp_world}));
  // A whitespace run ending in newlines ends after the last newline.
  CHECK(same(tok->encode("\n\nHello", false, false), {nl2, hello}));
  // " ?[^\s\p{L}\p{N}]+" takes the space with punctuation.
  CHECK(same(tok->encode("Hello !!", false, false), {hello, sp_bang}));
  // Trailing spaces at the very end are one pre-token.
  CHECK(same(tok->encode("Hello   ", false, false), {hello, sp3}));
}

void test_special_tokens() {
  Vocab voc = byte_vocab();
  const Token bos = voc.add("<|begin_of_text|>", 3);
  const Token eot = voc.add("<|eot_id|>", 3);
  const Token eot_long = voc.add("<|eot_id|>x", 3);  // longer candidate wins where both match
  const Token user = voc.add("<tool>", 4);           // user-defined: matched even without parse_special
  voc.v.bos_id = static_cast<uint64_t>(bos);
  voc.v.eos_id = static_cast<uint64_t>(eot);
  auto tok = Tokenizer::from_vocab(voc.v);
  CHECK(same(tok->encode("a<|eot_id|>b", false, true), {'a', eot, 'b'}));
  CHECK(same(tok->encode("<|eot_id|>x", false, true), {eot_long}));
  // Without parse_special the control token is plain text.
  const std::vector<Token> plain = tok->encode("<|eot_id|>", false, false);
  CHECK(plain.size() > 1 && plain[0] == '<');
  CHECK(same(tok->encode("a<tool>b", false, false), {'a', user, 'b'}));
  // BOS per add_bos_token (default true for llama-bpe).
  CHECK(same(tok->encode("a", true, false), {bos, 'a'}));
  CHECK(tok->bos() == bos);
  CHECK(tok->eos() == eot);
  CHECK(tok->is_end_of_generation(eot));
  CHECK(!tok->is_end_of_generation(bos));
  voc.v.add_bos = false;
  auto no_bos = Tokenizer::from_vocab(voc.v);
  CHECK(same(no_bos->encode("a", true, false), {'a'}));
  // Pieces: control tokens are empty unless special.
  CHECK(tok->token_to_piece(eot, false).empty());
  CHECK(tok->token_to_piece(eot, true) == "<|eot_id|>");
  CHECK(tok->token_to_piece(user, false) == "<tool>");
}

void test_bytes_and_invalid_utf8() {
  Vocab voc = byte_vocab();
  auto tok = Tokenizer::from_vocab(voc.v);
  // Every byte maps to its own single-byte token and back.
  for (int b = 0; b < 256; ++b) {
    const std::string raw(1, static_cast<char>(b));
    CHECK(tok->token_to_piece(b) == raw);
  }
  // A stray continuation byte becomes U+FFFD (EF BF BD), one per invalid byte.
  CHECK(same(tok->encode(std::string("a\x80", 2), false, false), {'a', 0xEF, 0xBF, 0xBD}));
  CHECK(same(tok->encode(std::string("\xC3", 1), false, false), {0xEF, 0xBF, 0xBD}));
  // An overlong NUL (C0 80) decodes to U+0000 and is re-encoded as the byte 0.
  CHECK(same(tok->encode(std::string("\xC0\x80", 2), false, false), {0}));
  // Valid multi-byte text keeps its bytes.
  CHECK(same(tok->encode("\xC3\xA9", false, false), {0xC3, 0xA9}));
  CHECK(tok->decode(tok->encode("h\xC3\xA9llo w\xC3\xB6rld\n", false, false)) == "h\xC3\xA9llo w\xC3\xB6rld\n");
}

void test_decode_cleanup() {
  Vocab voc = byte_vocab();
  auto tok = Tokenizer::from_vocab(voc.v);
  auto roundtrip = [&](const std::string& s) { return tok->decode(tok->encode(s, false, false)); };
  CHECK(roundtrip("a , b .") == "a, b.");
  CHECK(roundtrip("it 's") == "it's");
  CHECK(roundtrip("a ' b") == "a'b");
  CHECK(roundtrip("do 't") == "do 't");
  CHECK(roundtrip("we 're") == "we're");
  // Per-token pieces are not cleaned.
  CHECK(tok->token_to_piece(' ') == " ");
}

void test_errors() {
  Vocab voc = byte_vocab();
  voc.v.pre = "qwen2";
  bool threw = false;
  try {
    Tokenizer::from_vocab(voc.v);
  } catch (const hcattn::Error& e) {
    threw = std::string(e.what()).find("qwen2") != std::string::npos;
  }
  CHECK(threw);
  Vocab dup = byte_vocab();
  dup.add("a");
  threw = false;
  try {
    Tokenizer::from_vocab(dup.v);
  } catch (const hcattn::Error& e) {
    threw = std::string(e.what()).find("same text") != std::string::npos;
  }
  CHECK(threw);
  auto tok = Tokenizer::from_vocab(byte_vocab().v);
  threw = false;
  try {
    tok->token_to_piece(100000);
  } catch (const hcattn::Error&) {
    threw = true;
  }
  CHECK(threw);
}

void test_chat_template() {
  const std::string t = Tokenizer::apply_chat_template({{"system", " Be brief.\n"}, {"user", "Hi"}}, true);
  CHECK(t ==
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(Tokenizer::apply_chat_template({{"user", "x"}}, false) == "<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

void test_unicode_classes() {
  using namespace hcattn::unicode;
  CHECK(class_of('a') == kLetter);
  CHECK(class_of('7') == kNumber);
  CHECK(class_of(' ') == kWhitespace);
  CHECK(class_of('_') == kOther);
  CHECK(class_of(0x4E2D) == kLetter);   // 中
  CHECK(class_of(0x00BD) == kNumber);   // ½
  CHECK(class_of(0x0663) == kNumber);   // Arabic-Indic three
  CHECK(class_of(0x3000) == kWhitespace);
  CHECK(class_of(0x0085) == kWhitespace);
  CHECK(class_of(0x200B) == kOther);    // zero-width space is not White_Space
  CHECK(class_of(0x0301) == kOther);    // combining acute accent (a mark)
  CHECK(class_of(0x1F600) == kOther);   // emoji
  CHECK(suffix_lowercase('S') == 's');
  CHECK(suffix_lowercase(0x212A) == 0x212A);
}

}  // namespace

int main() {
  test_merge_order();
  test_stale_pairs();
  test_pretokenizer_splits();
  test_special_tokens();
  test_bytes_and_invalid_utf8();
  test_decode_cleanup();
  test_errors();
  test_chat_template();
  test_unicode_classes();
  return test_summary("test_tokenizer_bpe");
}
