// Llama-3 byte-level BPE ("gpt2" model, "llama-bpe" pre-tokenizer) read from a GGUF; token ids equal
// llama.cpp's for every input (FORMATS.md §3).
#pragma once
#include <cstdint>
#include <memory>
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

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* from the file; throws hcattn::Error naming a missing or malformed key.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& file);
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
