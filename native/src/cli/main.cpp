// hcattn-cli: the engine without Node, for native tests and GPU-machine benchmarks.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/bench_kernels.h"
#include "cuda/cli_entry.h"
#include "hcattn/engine.h"

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --name value / --flag arguments after the command.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("-", 0) != 0) throw UsageError("unexpected argument '" + a + "'");
      const bool is_flag = i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-');
      if (is_flag) {
        values_[a] = "";
      } else {
        values_[a] = argv[++i];
      }
    }
  }
  bool has(const std::string& k) const { return values_.count(k) > 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    const auto it = values_.find(k);
    return it == values_.end() ? fallback : it->second;
  }
  std::string required(const std::string& k) const {
    const auto it = values_.find(k);
    if (it == values_.end() || it->second.empty()) throw UsageError("missing " + k + " <value>");
    return it->second;
  }
  double number(const std::string& k, double fallback) const {
    const auto it = values_.find(k);
    if (it == values_.end()) return fallback;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0' || errno != 0) throw UsageError(k + " needs a number, got '" + it->second + "'");
    return v;
  }

 private:
  std::map<std::string, std::string> values_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A JSON array of integers, e.g. [128000, 791, 4062].
std::vector<hcattn::Token> parse_id_array(const std::string& text, const std::string& where) {
  std::vector<hcattn::Token> ids;
  size_t i = text.find_first_not_of(" \t\r\n");
  if (i == std::string::npos || text[i] != '[') throw std::runtime_error(where + ": expected a JSON array of token ids");
  ++i;
  for (;;) {
    i = text.find_first_not_of(" \t\r\n", i);
    if (i == std::string::npos) throw std::runtime_error(where + ": unterminated array");
    if (text[i] == ']') break;
    char* end = nullptr;
    const long v = std::strtol(text.c_str() + i, &end, 10);
    if (end == text.c_str() + i) throw std::runtime_error(where + ": expected a token id at byte " + std::to_string(i));
    ids.push_back(static_cast<hcattn::Token>(v));
    i = text.find_first_not_of(" \t\r\n", static_cast<size_t>(end - text.c_str()));
    if (i != std::string::npos && text[i] == ',') ++i;
  }
  return ids;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::shared_ptr<hcattn::Model> load_model(const Args& a) {
  hcattn::ModelOptions o;
  o.threads = static_cast<int>(a.number("--threads", 0));
  o.device = a.get("--device", "auto");
  auto m = hcattn::Model::load(a.required("--model"), o);
  if (!m->info().device_note.empty()) std::fprintf(stderr, "hcattn-cli: %s\n", m->info().device_note.c_str());
  return m;
}

hcattn::ContextOptions context_options(const Args& a, size_t needed) {
  hcattn::ContextOptions c;
  c.n_ctx = static_cast<int>(a.number("--ctx", static_cast<double>(needed)));
  c.n_batch = static_cast<int>(a.number("--batch", c.n_batch));
  if (a.get("--kv", "f32") == "f16") c.kv_type = hcattn::KvType::F16;
  return c;
}

int cmd_info() {
  const hcattn::BuildInfo b = hcattn::build_info();
  std::printf("{\"version\":\"%s\",\"simd\":\"%s\",\"cudaCompiled\":%s,\"cudaDevices\":%d,\"cudaNote\":%s}\n",
              b.version.c_str(), b.simd.c_str(), b.cuda_compiled ? "true" : "false", b.cuda_devices,
              json_string(b.cuda_note).c_str());
  return 0;
}

int cmd_model_info(const Args& a) {
  const auto m = load_model(a);
  const hcattn::ModelInfo& i = m->info();
  std::printf("{\"name\":%s,\"quantization\":\"%s\",\"parameters\":%lld,\"nCtxTrain\":%d,\"nLayer\":%d,\"nHead\":%d,"
              "\"nHeadKv\":%d,\"headDim\":%d,\"nEmbd\":%d,\"nFf\":%d,\"nVocab\":%d,\"digest\":\"%s\",\"device\":\"%s\","
              "\"deviceName\":%s,\"deviceNote\":%s}\n",
              json_string(i.name).c_str(), i.quantization.c_str(), static_cast<long long>(i.parameters), i.n_ctx_train,
              i.n_layer, i.n_head, i.n_head_kv, i.head_dim, i.n_embd, i.n_ff, i.n_vocab, i.digest.c_str(), i.device.c_str(),
              json_string(i.device_name).c_str(), json_string(i.device_note).c_str());
  return 0;
}

int cmd_tokenize(const Args& a) {
  if (a.has("--text") == a.has("--file")) throw UsageError("give exactly one of --text T or --file F");
  const std::string text = a.has("--text") ? a.get("--text") : read_file(a.required("--file"));
  const auto m = load_model(a);
  const std::vector<hcattn::Token> ids = m->tokenize(text, a.has("--bos"), a.has("--special"));
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  std::printf("%s]\n", out.c_str());
  return 0;
}

int cmd_eval(const Args& a) {
  const std::string file = a.required("--tokens-file");
  const std::vector<hcattn::Token> ids = parse_id_array(read_file(file), file);
  const int top_k = static_cast<int>(a.number("--top", 5));
  const auto m = load_model(a);
  auto ctx = m->create_context(context_options(a, ids.size()));
  const std::vector<float> logits = ctx->eval_logits(ids);
  const int n_vocab = m->info().n_vocab;
  for (size_t t = 0; t < ids.size(); ++t) {
    const hcattn::TopLogprobs top = hcattn::top_logprobs(logits.data() + t * n_vocab, n_vocab, top_k);
    std::string line = "{\"pos\":" + std::to_string(t) + ",\"top\":[";
    for (size_t i = 0; i < top.top.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s[%d,%.7g]", i ? "," : "", top.top[i].first, top.top[i].second);
      line += buf;
    }
    std::printf("%s]}\n", line.c_str());
  }
  return 0;
}

int cmd_generate(const Args& a) {
  const std::string prompt = a.required("--prompt");
  const int n = static_cast<int>(a.number("-n", a.number("--max-tokens", 128)));
  const auto m = load_model(a);
  const std::vector<hcattn::Token> ids = m->tokenize(prompt, true, true);
  auto ctx = m->create_context(context_options(a, ids.size() + n));
  const auto t0 = std::chrono::steady_clock::now();
  ctx->prefill(ids);
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  hcattn::GenerateOptions g;
  g.max_tokens = n;
  g.sampling.temperature = static_cast<float>(a.number("--temperature", g.sampling.temperature));
  g.sampling.top_k = static_cast<int>(a.number("--top-k", g.sampling.top_k));
  g.sampling.top_p = static_cast<float>(a.number("--top-p", g.sampling.top_p));
  g.sampling.repeat_penalty = static_cast<float>(a.number("--repeat-penalty", g.sampling.repeat_penalty));
  g.sampling.seed = static_cast<uint64_t>(a.number("--seed", 0));
  const hcattn::GenerateResult r = ctx->generate(g, [](hcattn::Token, const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  std::fprintf(stderr, "prompt %zu tokens in %.2f s (%.2f tok/s); generated %d tokens in %.2f s (%.2f tok/s); stop: %s\n",
               ids.size(), prefill_s, ids.size() / prefill_s, r.stats.generated_tokens, r.stats.seconds,
               r.stats.tokens_per_second, r.stop_reason.c_str());
  return 0;
}

// Load time, prefill and decode speed on a synthetic prompt (ordinary token ids), as JSON.
int cmd_bench(const Args& a) {
  const int n_prompt = static_cast<int>(a.number("--prompt-tokens", 512));
  const int n_decode = static_cast<int>(a.number("--decode", 16));
  if (n_prompt < 1 || n_decode < 1) throw UsageError("--prompt-tokens and --decode must be at least 1");
  auto t0 = std::chrono::steady_clock::now();
  const auto m = load_model(a);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<hcattn::Token> prompt;
  uint32_t s = 12345;
  for (int i = 0; i < n_prompt; ++i) {
    s = s * 1103515245u + 12345u;
    prompt.push_back(static_cast<hcattn::Token>(s % static_cast<uint32_t>(m->info().n_vocab / 2)));
  }
  auto ctx = m->create_context(context_options(a, prompt.size() + n_decode + 1));
  t0 = std::chrono::steady_clock::now();
  ctx->prefill(prompt);
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  hcattn::GenerateOptions g;
  g.max_tokens = n_decode + 1;  // n_decode forward steps: the last sampled token is not evaluated
  g.sampling.temperature = 0;
  const hcattn::GenerateResult r = ctx->generate(g);
  const int steps = std::max(1, static_cast<int>(r.tokens.size()) - 1);
  std::printf("{\"model\":%s,\"device\":\"%s\",\"threads\":%d,\"loadSeconds\":%.3f,\"promptTokens\":%d,\"prefillTokPerS\":%.3f,"
              "\"decodeSteps\":%d,\"decodeTokPerS\":%.3f}\n",
              json_string(m->info().name).c_str(), m->info().device.c_str(), m->threads(), load_s, n_prompt, n_prompt / prefill_s, steps,
              steps / r.stats.seconds);
  return 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: hcattn-cli <command> [options]\n"
               "  info                                  build and machine capabilities as JSON\n"
               "  model-info --model M                  the model's summary as JSON\n"
               "  tokenize --model M (--text T | --file F) [--bos] [--special]\n"
               "                                        token ids as a JSON array\n"
               "  eval --model M --tokens-file F [--top K] [--kv f32|f16]\n"
               "                                        one JSON line per position: {\"pos\", \"top\": [[id, logprob]]}\n"
               "  generate --model M --prompt P [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
               "                                        streams the continuation to stdout\n"
               "  bench --model M [--prompt-tokens N] [--decode N]\n"
               "                                        load time, prefill and decode tokens/s as JSON\n"
               "  bench --shape llama3-8b|llama32-1b --qtype q4_0|q8_0 --random [--ctx N] [--kv 50%%|25%%|12.5%%] [--quick]\n"
               "                                        CUDA: random-weight model on the GPU, prefill/decode and op timings\n"
               "  test [--models DIR] [--seed N]        CUDA: every op and whole models (fixtures in DIR) against the CPU\n"
               "  bench-kernels [--json] [--threads N] [--types T,..] [--levels L,..] [--tokens N] [--repeats N]\n"
               "                                        matmul kernel micro-benchmark on random in-memory weights\n"
               "  --version                             engine version\n"
               "common options: --threads N (0: all cores), --ctx N, --batch N,\n"
               "                --device auto|cpu|cuda (auto: CUDA when built in and a GPU is present; cuda without\n"
               "                one runs on the CPU and says why)\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "--version") {
      std::printf("%s\n", hcattn::build_info().version.c_str());
      return 0;
    }
    if (cmd == "info") return cmd_info();
    if (cmd == "bench-kernels") return hcattn::cli::bench_kernels(argc - 1, argv + 1);
    if (cmd == "test") return hcattn::cuda::cuda_selftest(argc - 1, argv + 1);
    for (int i = 2; i < argc; ++i) {
      // A model shape instead of a file: the CUDA benchmark on random weights made on the device.
      const std::string arg = argv[i];
      if (cmd == "bench" && (arg == "--shape" || arg == "--random")) return hcattn::cuda::cuda_bench(argc - 1, argv + 1);
    }
    const Args args(argc, argv, 2);
    if (cmd == "model-info") return cmd_model_info(args);
    if (cmd == "tokenize") return cmd_tokenize(args);
    if (cmd == "eval") return cmd_eval(args);
    if (cmd == "generate") return cmd_generate(args);
    if (cmd == "bench") return cmd_bench(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "hcattn-cli %s: %s\n", cmd.c_str(), e.what());
    usage();
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hcattn-cli %s: %s\n", cmd.c_str(), e.what());
    return 1;
  }
  usage();
  return 2;
}
