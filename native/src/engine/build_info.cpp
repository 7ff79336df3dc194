#include "cpu/features.h"
#include "hcattn/engine.h"
#if HCATTN_WITH_CUDA
#include "cuda/device.h"
#endif

namespace hcattn {

BuildInfo build_info() {
  BuildInfo info;
  info.version = "0.1.0";
  info.simd = cpu::simd_level_name(cpu::simd_level());
#if HCATTN_WITH_CUDA
  info.cuda_compiled = true;
  const cuda::DeviceProbe probe = cuda::probe_devices();
  info.cuda_devices = probe.device_count;
  info.cuda_note = probe.reason;
#else
  info.cuda_note = "built without the CUDA backend";
#endif
  return info;
}

}  // namespace hcattn
