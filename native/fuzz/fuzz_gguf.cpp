// libFuzzer target for the GGUF reader: any input must either parse or throw hcattn::Error, and
// everything a successful parse hands out (strings, arrays, tensor data pointers) must lie inside the
// input. AddressSanitizer turns any stray read into a crash, so the target reads every byte it is
// given back: all metadata strings, the first and last byte of every tensor, and the first row of
// every tensor the engine can dequantize.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "gguf/gguf.h"
#include "quant/types.h"

namespace {

// Rows longer than this are skipped so one input cannot make the target allocate much.
constexpr int64_t kMaxRowElems = 1 << 16;

volatile uint64_t g_sink;  // keeps the reads below from being optimised away

uint64_t touch(std::string_view s) {
  uint64_t sum = s.size();
  for (const char ch : s) sum += static_cast<uint8_t>(ch);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hcattn::gguf::File;
  try {
    const std::unique_ptr<File> file = File::parse(data, size, "fuzz-input");
    uint64_t sum = file->version();
    for (const auto& [key, value] : file->metadata()) {
      sum += touch(key) + touch(value.str) + value.ints.size() + value.nums.size();
      for (const std::string_view s : value.strs) sum += touch(s);
    }
    // The typed getters on keys a model loader reads, whatever their stored type.
    for (const char* key : {"general.architecture", "general.alignment", "llama.block_count"}) {
      try {
        sum += file->get_uint_or(key, 0);
      } catch (const hcattn::Error&) {
      }
      try {
        sum += file->get_string_or(key, "").size();
      } catch (const hcattn::Error&) {
      }
    }
    std::vector<float> row;
    for (const hcattn::gguf::TensorInfo& t : file->tensors()) {
      if (file->find_tensor(t.name) != &t) __builtin_trap();
      if (t.nbytes == 0) continue;
      sum += t.data[0] + t.data[t.nbytes - 1];
      if (t.row_bytes() > t.nbytes) __builtin_trap();
      try {
        t.require_supported();
      } catch (const hcattn::Error&) {
        continue;
      }
      if (t.ne[0] > kMaxRowElems) continue;
      row.resize(static_cast<size_t>(t.ne[0]));
      hcattn::quant::dequantize_row(t.type, t.data, row.data(), t.ne[0]);
      sum += row.empty() ? 0 : static_cast<uint64_t>(row[0] == row[0]);
    }
    g_sink = sum;
  } catch (const hcattn::Error&) {
    // Rejected input: the expected outcome for almost every mutation.
  }
  return 0;
}
