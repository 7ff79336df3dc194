// Nearest-centroid search shared by codebook training and key encoding (the prefill path encodes every
// cached key, so this is a hot loop): one scalar version and one AVX-512 version chosen at run time.
#pragma once
#include <cstdint>

namespace hcattn::kv {

// For each of n points (`sub` dims, rows `stride` floats apart): the index of the nearest of c centroids,
// given the codebook transposed to (sub, c) and the squared centroid norms (c). Distances are compared as
// ||c||^2 - 2<x, c>, which ranks like the squared L2 distance.
void assign_nearest(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                    const float* norms, int c, int32_t* out);

void assign_nearest_scalar(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                           const float* norms, int c, int32_t* out);
void assign_nearest_avx512(const float* pts, int64_t n, int64_t stride, int sub, const float* transposed,
                           const float* norms, int c, int32_t* out);

}  // namespace hcattn::kv
