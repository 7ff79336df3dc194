// What the CUDA probe found. Declared here so CPU-only code can include it; defined in device.cu.
#pragma once
#include <cstddef>
#include <string>

namespace hcattn::cuda {

struct DeviceProbe {
  int device_count = 0;
  std::string name;
  std::size_t total_memory = 0;
  int compute_capability = 0;
  std::string reason;  // why no device is usable, when device_count == 0
};

DeviceProbe probe_devices();

// Device 0's memory as cudaMemGetInfo reports it: what other processes and this one's allocations leave.
struct DeviceMemory {
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
};

// false when no device is usable (no driver, no GPU): then `out` is untouched. On the first call in a
// process it creates the device's primary context, so callers ask only when the model runs on the GPU.
bool device_memory(DeviceMemory& out);

}  // namespace hcattn::cuda
