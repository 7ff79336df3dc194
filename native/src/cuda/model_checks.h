// Whole-model checks of the CUDA backend: the same token sequence through a model loaded on the CPU
// and on the GPU, log-probabilities over the full vocabulary compared at every position. Used by the
// ctest case test_cuda_model and by `hcattn-cli test`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/op_checks.h"
#include "quant/types.h"

namespace hcattn::cuda {

// kv_mode: "f32" | "f16" (full caches) or an HCAttention budget ("50%", "25%", "12.5%"). exact: the
// F32 bound (max |Δ logprob| <= 1e-3), else argmax agreement >= 99% (quantized weights: the CPU
// rounds activations to Q8 as llama.cpp does, the GPU keeps them F32/F16).
CheckResult check_model_logprobs(const std::string& path, const std::string& kv_mode, bool exact, uint64_t seed);

// Writes a 2-layer llama GGUF (vocabulary 2048, width 256, 4 query and 2 KV heads of 64, FFN 512) with
// uniform random weights stored as type (F32, F16, Q8_0 or Q4_0), with rope_freqs factors when asked,
// under $TMPDIR (else /tmp). Returns its path; the caller removes it.
std::string write_random_model(quant::GgmlType type, bool rope_freqs, uint64_t seed);

// Small llama models with random weights written to the temp folder for the check (so a bare GPU
// machine needs no files): F32 with rope_freqs exact, F16/Q8_0/Q4_0 by argmax, the F16 full cache and
// a 25% HCAttention budget.
std::vector<CheckResult> check_random_models(uint64_t seed);

// The fixtures of `dir` (build/test-data) that exist: F32 models exact, F16 and quantized by
// argmax, one HCAttention budget. Names of the fixtures not found go to *missing.
std::vector<CheckResult> check_models(const std::string& dir, uint64_t seed, std::vector<std::string>* missing);

}  // namespace hcattn::cuda
