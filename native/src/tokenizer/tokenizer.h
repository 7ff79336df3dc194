// Llama-3 byte-level BPE ("gpt2" model, "llama-bpe" pre-tokenizer) read from a GGUF; token ids equal
// llama.cpp's for every input (FORMATS.md §3).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hcattn::gguf {
class File;
}

namespace hcattn {

using Token = int32_t;

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// What the tokenizer reads from a GGUF (the tokenizer.ggml.* keys), so that a vocabulary can also be
// built by hand (tests). Absent optional keys keep llama.cpp's defaults.
struct TokenizerVocab {
  std::string model = "gpt2";        // tokenizer.ggml.model
  std::string pre = "llama-bpe";     // tokenizer.ggml.pre
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens, byte-level (GPT-2 byte map) text
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control,
                                     // 4 user-defined, 5 unused, 6 byte); empty: all normal
  std::vector<std::string> merges;   // tokenizer.ggml.merges, "left right", rank = index
  // tokenizer.ggml.<name>_token_id
  std::optional<uint64_t> bos_id, eos_id, eot_id, eom_id;
  std::optional<uint64_t> fim_pre_id, fim_suf_id, fim_mid_id, fim_pad_id, fim_rep_id, fim_sep_id;
  std::optional<bool> add_bos;           // tokenizer.ggml.add_bos_token (llama-bpe default: true)
  std::optional<bool> add_space_prefix;  // tokenizer.ggml.add_space_prefix (default: false)
};

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from the file; throws hcattn::Error naming a missing or malformed key.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);
  // Builds the tokenizer from already-read keys; throws hcattn::Error for an unsupported or broken vocabulary.
  static std::unique_ptr<Tokenizer> from_vocab(const TokenizerVocab& vocab);
  virtual ~Tokenizer() = default;

  // add_bos: prepend BOS when the vocabulary asks for it (tokenizer.ggml.add_bos_token, default true for
  // llama-bpe). parse_special: recognise <|…|> control tokens in the text; otherwise they are plain text.
  virtual std::vector<Token> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
  // The bytes of one token as streamed output (control tokens give "" unless special is true).
  virtual std::string token_to_piece(Token id, bool special = false) const = 0;
  // Whole-sequence detokenization.
  virtual std::string decode(const std::vector<Token>& ids, bool special = false) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual Token bos() const = 0;
  virtual Token eos() const = 0;
  virtual bool is_end_of_generation(Token id) const = 0;  // eos, eot, eom and llama.cpp's EOG texts

  // Llama-3 instruct chat template (llama.cpp's built-in "llama3"): each message as
  // <|start_header_id|>role<|end_header_id|>\n\n + trimmed content + <|eot_id|>, then the assistant header
  // when add_generation_prompt. No BOS text: encode(…, add_bos=true, parse_special=true) adds it.
  static std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt);
};

}  // namespace hcattn
