#include "cpu/matmul_kernels.h"
namespace hcattn::cpu {
RowsKernel rows_kernel_avx2(quant::GgmlType) { return nullptr; }
}  // namespace hcattn::cpu
