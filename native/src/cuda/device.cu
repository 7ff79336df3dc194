// Probe for a usable CUDA device. Built wherever nvcc exists; at run time a missing driver or GPU is
// an ordinary answer (0 devices plus the reason), never a crash, so the engine falls back to the CPU.
#include <cuda_runtime.h>

#include <string>

#include "cuda/device.h"

namespace hcattn::cuda {

DeviceProbe probe_devices() {
  DeviceProbe probe;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.reason = std::string("CUDA unavailable: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later probes start clean
    return probe;
  }
  probe.device_count = count;
  if (count > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      probe.name = prop.name;
      probe.total_memory = prop.totalGlobalMem;
      probe.compute_capability = prop.major * 10 + prop.minor;
    }
  } else {
    probe.reason = "no CUDA device found";
  }
  return probe;
}

bool device_memory(DeviceMemory& out) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky error, as probe_devices does
    return false;
  }
  std::size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  out.free_bytes = free_b;
  out.total_bytes = total_b;
  return true;
}

}  // namespace hcattn::cuda
