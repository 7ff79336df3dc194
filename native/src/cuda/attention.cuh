// Causal attention for a prefill chunk on the GPU: exact softmax attention of n_q queries over n_k
// keys (the chunk's own and those before it), flash-style (key tiles in shared memory, online
// softmax, no n_q × n_k score matrix), GQA. Up to 4 queries (decode) split the keys over many blocks
// and merge the partial softmaxes, so a single query uses the whole chip.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hcattn::cuda {

struct AttentionShape {
  int n_q = 0;        // queries: positions [n_k - n_q, n_k)
  int n_k = 0;        // keys and values: positions [0, n_k)
  int n_head = 0;     // query heads
  int n_head_kv = 0;  // query head h reads KV head h / (n_head / n_head_kv)
  int head_dim = 0;   // at most 128
  float scale = 0;    // multiplies q·k before the softmax
};

// q, out: (n_q, n_head, head_dim) f32; k, v: (n_k, n_head_kv, head_dim) f16 bits; all on the device.
// Query i sees keys j <= n_k - n_q + i.
void attention_prefill(const float* q, const uint16_t* k, const uint16_t* v, float* out, const AttentionShape& s,
                       cudaStream_t stream);
// The same with F32 keys and values (the F32 cache, no rounding of K and V).
void attention_prefill(const float* q, const float* k, const float* v, float* out, const AttentionShape& s,
                       cudaStream_t stream);

}  // namespace hcattn::cuda
