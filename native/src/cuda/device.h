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

}  // namespace hcattn::cuda
