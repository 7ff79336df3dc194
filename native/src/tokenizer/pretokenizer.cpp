#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode.h"

namespace hcattn::tokenizer {

namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kOther;
using unicode::kWhitespace;

inline bool is_cr_or_lf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// Length (2 or 3) of a contraction suffix starting at the apostrophe at p, or 0.
inline size_t contraction_length(const uint32_t* cps, size_t n, size_t p) {
  if (p + 1 >= n) return 0;
  const uint32_t c1 = unicode::suffix_lowercase(cps[p + 1]);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (p + 2 >= n) return 0;
  const uint32_t c2 = unicode::suffix_lowercase(cps[p + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

}  // namespace

void split_llama3(const uint32_t* cps, const uint8_t* cls, size_t n, std::vector<uint32_t>& ends) {
  size_t pos = 0;
  auto emit = [&](size_t end) {
    ends.push_back(static_cast<uint32_t>(end));
    pos = end;
  };
  while (pos < n) {
    const uint32_t cp = cps[pos];
    const uint8_t c = cls[pos];

    // 's 't 're 've 'm 'll 'd, any letter case.
    if (cp == '\'') {
      const size_t len = contraction_length(cps, n, pos);
      if (len != 0) {
        emit(pos + len);
        continue;
      }
    }

    // [^\r\n\p{L}\p{N}]?\p{L}+ : one optional non-letter lead, then letters.
    if (!is_cr_or_lf(cp) && c != kNumber && (c == kLetter || (pos + 1 < n && cls[pos + 1] == kLetter))) {
      size_t end = pos + 1;
      while (end < n && cls[end] == kLetter) ++end;
      emit(end);
      continue;
    }

    // \p{N}{1,3} : a number run in chunks of three.
    if (c == kNumber) {
      size_t end = pos;
      while (end < n && cls[end] == kNumber) ++end;
      while (pos + 3 < end) emit(pos + 3);
      emit(end);
      continue;
    }

    //  ?[^\s\p{L}\p{N}]+[\r\n]* : an optional space, a run of other code points, trailing CR/LF. A space
    // at the very end of the fragment also takes this branch (with an empty run), as in llama.cpp.
    const bool space_lead = cp == ' ';
    const bool after_lead_is_other_or_end = space_lead ? (pos + 1 >= n || cls[pos + 1] == kOther) : c == kOther;
    if (after_lead_is_other_or_end) {
      size_t end = pos + (space_lead ? 1 : 0);
      while (end < n && cls[end] == kOther) ++end;
      while (end < n && is_cr_or_lf(cps[end])) ++end;
      emit(end);
      continue;
    }

    // Whitespace: \s*[\r\n]+ (up to the last CR/LF of the run), else \s+(?!\S) (all but the last one when
    // text follows), else \s+.
    size_t run_end = pos;
    size_t after_last_cr_lf = 0;
    while (run_end < n && cls[run_end] == kWhitespace) {
      if (is_cr_or_lf(cps[run_end])) after_last_cr_lf = run_end + 1;
      ++run_end;
    }
    if (after_last_cr_lf != 0) {
      emit(after_last_cr_lf);
      continue;
    }
    const size_t run = run_end - pos;
    if (run > 1 && run_end < n) {
      emit(run_end - 1);
      continue;
    }
    if (run > 0) {
      emit(run_end);
      continue;
    }

    emit(pos + 1);
  }
}

}  // namespace hcattn::tokenizer
