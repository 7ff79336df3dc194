// Device selection at model load, on any machine: "cpu" runs on the CPU with no note; "auto" uses
// CUDA exactly when a usable device is present; an explicit "cuda" without one (a CPU-only build, no
// GPU or driver) loads on the CPU with one note that says why, and that model computes the same
// logits as the CPU one; an unknown device is refused with a message that lists the choices.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "engine/backend.h"
#include "hcattn/engine.h"
#include "test_util.h"

using namespace hcattn;

namespace {

std::shared_ptr<Model> load(const std::string& path, const std::string& device) {
  ModelOptions o;
  o.threads = 2;
  o.device = device;
  return Model::load(path, o);
}

std::vector<float> logits_of(Model& m) {
  auto ctx = m.create_context(ContextOptions{});
  return ctx->eval_logits({1, 500, 2000, 30000, 7});
}

}  // namespace

int main() {
  const char* env = std::getenv("HCATTN_TEST_DATA");
  const std::string path = std::string(env ? env : "build/test-data") + "/tiny-f32.gguf";
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    std::printf("test_cuda_fallback: skipped: %s not found (npm run fixtures writes it)\n", path.c_str());
    return 77;
  }
  const std::string unavailable = engine::cuda_unavailable_reason();
  const bool gpu = unavailable.empty();
  std::printf("CUDA here: %s\n", gpu ? "usable" : unavailable.c_str());

  const auto cpu = load(path, "cpu");
  CHECK(cpu->info().device == "cpu");
  CHECK(cpu->info().device_note.empty());
  CHECK(cpu->info().device_name.find("CPU") == 0);

  const auto automatic = load(path, "auto");
  CHECK(automatic->info().device == (gpu ? "cuda" : "cpu"));
  std::printf("auto → %s (%s)\n", automatic->info().device.c_str(), automatic->info().device_name.c_str());

  const auto requested = load(path, "cuda");
  if (gpu) {
    CHECK(requested->info().device == "cuda");
    CHECK(requested->info().device_note.empty());
  } else {
    // One line naming the fallback and the reason.
    const std::string& note = requested->info().device_note;
    std::printf("cuda → %s, note: %s\n", requested->info().device.c_str(), note.c_str());
    CHECK(requested->info().device == "cpu");
    CHECK(note.find("CUDA requested but not available, running on the CPU: ") == 0);
    CHECK(note.find(unavailable) != std::string::npos);
    CHECK(note.find('\n') == std::string::npos);
    const std::vector<float> a = logits_of(*cpu), b = logits_of(*requested);
    CHECK(a.size() == b.size() && a == b);
  }

  bool refused = false;
  try {
    load(path, "gpu");
  } catch (const std::exception& e) {
    refused = std::string(e.what()).find("\"auto\", \"cpu\" or \"cuda\"") != std::string::npos;
  }
  CHECK(refused);
  return test_summary("test_cuda_fallback");
}
