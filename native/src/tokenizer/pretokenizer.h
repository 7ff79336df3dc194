// The Llama-3 pre-tokenizer: splits one text fragment (as code points) into the pieces that BPE then
// encodes independently. It implements the tokenizer.json pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// with the same first-alternative-wins reading llama.cpp's hand-written splitter uses, including its
// treatment of the fragment end (FORMATS.md §3.2).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hcattn::tokenizer {

// cps[0..n) are the fragment's code points, cls[i] = unicode::class_of(cps[i]). Appends to `ends` the
// exclusive end index of every pre-token, in order (the last one is n when n > 0).
void split_llama3(const uint32_t* cps, const uint8_t* cls, size_t n, std::vector<uint32_t>& ends);

}  // namespace hcattn::tokenizer
