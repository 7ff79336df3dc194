// Lookups over the generated code point tables (unicode_tables.cpp).
#include "tokenizer/unicode.h"

#include <algorithm>

namespace hcattn::unicode {

uint8_t class_of_non_ascii(uint32_t cp) {
  const ClassRange* end = kClassRanges + kClassRangeCount;
  // First range whose last code point is >= cp; cp is in it when its first is <= cp.
  const ClassRange* r = std::lower_bound(kClassRanges, end, cp, [](const ClassRange& range, uint32_t value) {
    return range.last < value;
  });
  return (r != end && r->first <= cp) ? r->cls : static_cast<uint8_t>(kOther);
}

uint32_t suffix_lowercase(uint32_t cp) {
  const LowerPair* end = kSuffixLowercase + kSuffixLowercaseCount;
  const LowerPair* p = std::lower_bound(kSuffixLowercase, end, cp, [](const LowerPair& pair, uint32_t value) {
    return pair.cp < value;
  });
  return (p != end && p->cp == cp) ? p->lower : cp;
}

}  // namespace hcattn::unicode
