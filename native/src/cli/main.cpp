// hcattn-cli: the engine without Node, for native tests and GPU-machine benchmarks.
#include <cstdio>
#include <cstring>
#include <string>

#include "hcattn/engine.h"

namespace {

int cmd_info() {
  const hcattn::BuildInfo b = hcattn::build_info();
  std::printf("{\"version\":\"%s\",\"simd\":\"%s\",\"cudaCompiled\":%s,\"cudaDevices\":%d,\"cudaNote\":\"%s\"}\n",
              b.version.c_str(), b.simd.c_str(), b.cuda_compiled ? "true" : "false", b.cuda_devices,
              b.cuda_note.c_str());
  return 0;
}

void usage() {
  std::fprintf(stderr,
               "usage: hcattn-cli <command>\n"
               "  info       build and machine capabilities as JSON\n"
               "  --version  engine version\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--version") {
    std::printf("%s\n", hcattn::build_info().version.c_str());
    return 0;
  }
  if (cmd == "info") return cmd_info();
  usage();
  return 2;
}
