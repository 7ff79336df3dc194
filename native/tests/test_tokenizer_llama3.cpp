// The real Llama-3 vocabulary, read from the fixture tiny-f32.gguf ($HCATTN_TEST_DATA, written by
// `npm run fixtures -- build/test-data`), against expected ids from llama.cpp's own tokenizer test
// vectors (models/ggml-vocab-llama-bpe.gguf.inp/.out). Skips (77) when the fixture is absent.
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using hcattn::Token;

namespace {

struct Vector {
  const char* text;
  std::vector<Token> ids;
};

const Vector kVectors[] = {
    {"ied 4 \xc2\xbd months", {1142, 220, 19, 220, 27154, 4038}},
    {"\xc3\x84pfel", {88075, 16276, 301}},
    {"", {}},
    {" ", {220}},
    {"  ", {256}},
    {"   ", {262}},
    {"\t", {197}},
    {"\n\n\n", {1432}},
    {"\t\n", {1602}},
    {" Hello, world!", {22691, 11, 1917, 0}},
    {" this is \xf0\x9f\xa6\x99.cpp", {420, 374, 11410, 99, 247, 13, 11055}},
    {"w048 7tuijk dsdfhu", {86, 23904, 220, 22, 83, 2005, 42908, 11729, 3013, 17156}},
    {"    Hello\n    Hello", {262, 22691, 198, 262, 22691}},
    {"\n =", {198, 284}},
    {"' era", {6, 11639}},
    {"!!!!!!", {17523, 3001}},
    {"3333333", {8765, 8765, 18}},
    {"C\xe1\xbb\xad" "a Vi\xe1\xbb\x87t", {34, 91163, 101798}},
    {" discards", {2624, 2402}},
};

}  // namespace

int main() {
  const char* dir = std::getenv("HCATTN_TEST_DATA");
  const std::string path = std::string(dir ? dir : "build/test-data") + "/tiny-f32.gguf";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    std::printf("test_tokenizer_llama3: SKIP, %s not found (write it with: npm run fixtures -- build/test-data --only tiny-f32)\n",
                path.c_str());
    return 77;
  }
  const auto file = hcattn::gguf::File::open(path);
  const auto tok = hcattn::Tokenizer::from_gguf(*file);

  CHECK(tok->vocab_size() == 128256);
  CHECK(tok->bos() == 128000);
  for (const Vector& v : kVectors) {
    const std::vector<Token> got = tok->encode(v.text, false, false);
    CHECK(got == v.ids);
    if (got != v.ids) std::fprintf(stderr, "  input: \"%s\"\n", v.text);
    // Pieces put the text back together.
    std::string joined;
    for (Token id : got) joined += tok->token_to_piece(id);
    CHECK(joined == v.text);
  }
  // Special tokens only where asked for; BOS per the file's add_bos_token.
  CHECK((tok->encode("<|eot_id|>", false, true) == std::vector<Token>{128009}));
  CHECK(tok->encode("<|eot_id|>", false, false).size() == 7);
  CHECK((tok->encode("Hello", true, false) == std::vector<Token>{128000, 9906}));
  CHECK(tok->is_end_of_generation(128001) && tok->is_end_of_generation(128009));
  CHECK(!tok->is_end_of_generation(128006));
  // The chat template's control tokens.
  const std::string prompt = hcattn::Tokenizer::apply_chat_template({{"user", "Hi"}}, true);
  const std::vector<Token> ids = tok->encode(prompt, true, true);
  CHECK((ids == std::vector<Token>{128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271}));
  CHECK(tok->decode(ids, true) == "<|begin_of_text|>" + prompt);
  CHECK(tok->decode(ids, false) == "user\n\nHiassistant\n\n");
  return test_summary("test_tokenizer_llama3");
}
