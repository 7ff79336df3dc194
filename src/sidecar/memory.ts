// The memory guard: before the engine maps a model and allocates a context, the sidecar checks that both
// fit in the memory this process may use, and refuses with the figures otherwise. Allocating first would
// let the kernel's OOM killer end the sidecar (and often the editor with it) without a word.
import { readFileSync } from "node:fs";
import * as os from "node:os";
import type { ModelInfo } from "../engine/addon";

export interface MemoryNeed {
  /** The weights: memory-mapped, but every page is read for each token, so they must stay resident. */
  weightsBytes: number;
  /** The repository context's KV cache (allocated whole when the context is created). */
  kvBytes: number;
  /** Activations and logits of one prefill chunk. */
  scratchBytes: number;
}

export function totalNeed(need: MemoryNeed): number {
  return need.weightsBytes + need.kvBytes + need.scratchBytes;
}

/** KV bytes per token of the engine's plain cache (keys and values, every layer and KV head). */
export function kvBytesPerToken(info: Pick<ModelInfo, "nLayer" | "nHeadKv" | "headDim">, bytesPerValue: number): number {
  return 2 * info.nLayer * info.nHeadKv * info.headDim * bytesPerValue;
}

export function memoryNeed(
  info: Pick<ModelInfo, "fileBytes" | "nLayer" | "nHeadKv" | "headDim" | "nEmbd" | "nFf" | "nVocab">,
  contextTokens: number,
  bytesPerValue: number,
  batchTokens: number,
): MemoryNeed {
  // One chunk's activations: residual, attention and FFN intermediates (f32), plus one row of logits.
  const scratchBytes = 4 * (batchTokens * (4 * info.nEmbd + 2 * info.nFf) + 2 * info.nVocab);
  return {
    weightsBytes: info.fileBytes,
    kvBytes: contextTokens * kvBytesPerToken(info, bytesPerValue),
    scratchBytes,
  };
}

/**
 * The sentence that refuses a model or context that does not fit, or undefined when it fits.
 * residentBytes: the part of the need this process holds already (the weights, once loaded), which the
 * system no longer counts as available.
 */
export function doesNotFitMessage(
  need: MemoryNeed,
  availableBytes: number,
  contextTokens: number,
  residentBytes = 0,
): string | undefined {
  const total = totalNeed(need);
  if (total - residentBytes <= availableBytes) return undefined;
  return (
    `The model and its context need ${formatGiB(total)} of memory (weights ${formatGiB(need.weightsBytes)}, ` +
    `KV cache for ${contextTokens.toLocaleString("en-US")} tokens ${formatGiB(need.kvBytes)}), ` +
    `but only ${formatGiB(availableBytes + residentBytes)} is available. Lower repoLlama.contextBudgetTokens, ` +
    "choose a smaller or more quantized model, or close other programs."
  );
}

/**
 * Memory this process can still use: what the system reports as available, capped by a cgroup limit
 * (containers, systemd slices), whose excess would end the process even with free RAM on the host.
 */
export function availableMemory(): number {
  const free = os.freemem();
  const cgroup = cgroupRoom();
  return cgroup === undefined ? free : Math.min(free, cgroup);
}

function cgroupRoom(): number | undefined {
  try {
    const max = readFileSync("/sys/fs/cgroup/memory.max", "utf8").trim();
    if (max === "max") return undefined;
    const used = Number(readFileSync("/sys/fs/cgroup/memory.current", "utf8").trim());
    return Math.max(0, Number(max) - used);
  } catch {
    return undefined; // not Linux, or cgroup v1: the system figure is all there is
  }
}

export function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;
}
