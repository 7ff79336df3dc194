// llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binaries) as the oracle for the engine tests and the
// engine benchmark. Reference settings for strict comparison (FORMATS.md §6.4): F32 KV cache, flash
// attention off, a fixed thread count, the whole sequence in one batch.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

let llamaPromise;

/** The llama.cpp runtime, CPU only, never built or downloaded here. */
export function llamaCpp() {
  llamaPromise ??= getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
  return llamaPromise;
}

export async function loadLlamaCppModel(modelPath) {
  const llama = await llamaCpp();
  return llama.loadModel({ modelPath, gpuLayers: 0 });
}

/** A context with the reference settings: F32 KV, no flash attention. */
export async function referenceContext(model, { contextSize, threads = 2, kv = "F32" }) {
  return model.createContext({
    contextSize,
    batchSize: contextSize,
    threads,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
}

/**
 * llama.cpp's natural-log probabilities over the whole vocabulary after every token: a Float64Array of
 * (tokens.length, nVocab). node-llama-cpp hands out float32 probabilities normalised with a float32
 * sum; renormalising them in double removes that sum's rounding, leaving ~1e-7 relative per entry.
 */
export async function llamaCppLogprobs(model, tokens, { threads = 2, kv = "F32" } = {}) {
  const context = await referenceContext(model, { contextSize: Math.max(256, tokens.length), threads, kv });
  try {
    const sequence = context.getSequence();
    const results = await sequence.controlledEvaluate(
      tokens.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }]),
    );
    const rows = results.map((r, pos) => {
      const probs = r?.next?.probabilities;
      if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${pos}`);
      return probs;
    });
    const vocab = rows[0].size;
    const out = new Float64Array(tokens.length * vocab);
    rows.forEach((probs, pos) => {
      let sum = 0;
      for (const p of probs.values()) sum += p;
      const logSum = Math.log(sum);
      const row = out.subarray(pos * vocab, (pos + 1) * vocab);
      row.fill(-Infinity);
      for (const [id, p] of probs) row[id] = Math.log(p) - logSum;
    });
    return { logprobs: out, nVocab: vocab };
  } finally {
    await context.dispose();
  }
}

/** n greedy tokens after the prompt, decoded one at a time by llama.cpp. */
export async function llamaCppGreedy(model, prompt, n, { threads = 2 } = {}) {
  const context = await referenceContext(model, { contextSize: Math.max(256, prompt.length + n + 1), threads });
  try {
    const sequence = context.getSequence();
    const out = [];
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      out.push(token);
      if (out.length >= n) break;
    }
    return out;
  } finally {
    await context.dispose();
  }
}
