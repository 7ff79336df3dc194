// The CUDA backend's host API: plain functions that take device pointers and a stream, one per op
// (declared in that op's .cuh), plus the helpers of cuda/runtime.h. All launches are asynchronous on
// the given stream unless the function says it synchronizes. Include this from plain C++ (no nvcc
// needed); it is compiled only when the build has HCATTN_WITH_CUDA.
#pragma once
#include "cuda/runtime.h"

#include "cuda/attention.cuh"
#include "cuda/convert.cuh"
#include "cuda/embed.cuh"
#include "cuda/hc_score.cuh"
#include "cuda/hc_select.cuh"
#include "cuda/hc_values.cuh"
#include "cuda/matmul.cuh"
#include "cuda/norm.cuh"
#include "cuda/residual.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
