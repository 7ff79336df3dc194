// The engine's C++ API: the only header the addon and hcattn-cli include.
#pragma once
#include <string>

namespace hcattn {

// How this build and this machine can run the engine.
struct BuildInfo {
  std::string version;     // engine version
  std::string simd;        // SIMD level kernels run at here: "avx512", "avx2" or "scalar"
  bool cuda_compiled = false;
  int cuda_devices = 0;    // usable CUDA devices (0 when not compiled or none present)
  std::string cuda_note;   // why CUDA is not used, when it is not
};

BuildInfo build_info();

}  // namespace hcattn
