// HCAttention approximate scores on the GPU: per query head a lookup table LUT[g][c] = <q_group,
// centroid>, then score_j = sum over groups of LUT[group][code_j] for every cached token. Both round
// exactly as the CPU's KeyCodebook::build_lut and kv::score_codes (same operations in the same order),
// so GPU and CPU scores are bit-identical.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

struct CodebookShape {
  int dim = 0;     // d: head dimension
  int groups = 0;  // g
  int centroids_per_group = 0;  // c
};

// q: (n_heads, dim); centroids: (g, c, dim / g); lut: (n_heads, g, c). All on the device. Scale q
// beforehand if the scores should come out scaled.
void build_lut(const float* q, const float* centroids, int n_heads, const CodebookShape& cb, float* lut,
               cudaStream_t stream);

// lut: (n_heads, g, c); codes: (n, g) of one KV head, shared by the n_heads query heads of its group;
// scores: (n_heads, n). All on the device.
void score_codes(const float* lut, const uint16_t* codes, int64_t n, int n_heads, const CodebookShape& cb,
                 float* scores, cudaStream_t stream);

// Random codes in [0, c) for n tokens × g groups (benchmarks). Deterministic for a seed.
void fill_random_codes(uint16_t* codes, int64_t n, const CodebookShape& cb, uint64_t seed, cudaStream_t stream);

}  // namespace hcattn::cuda
