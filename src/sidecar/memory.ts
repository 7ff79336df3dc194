// The memory guard: before the engine maps a model or grows a context, the sidecar checks that it fits in
// the memory this process may use, and refuses with the figures otherwise. Allocating first would let the
// kernel's OOM killer end the sidecar (and often the editor with it) without a word.
//
// The KV figures are the engine's own, measured per token and tier for the configured budget (an
// HCAttention cache keeps exact keys and values in the host tier, so a small budget shrinks the fast tier,
// not the total), never a plain-f16 formula.
import { readFileSync } from "node:fs";
import * as os from "node:os";
import type { Context, GpuMemory, KvMemory, ModelInfo } from "../engine/addon";

/** KV bytes per token in each tier, as the engine measured them for one budget. */
export interface TierBytesPerToken {
  /** Key codes / f16 keys / block means: GPU memory on a GPU, hot RAM on a CPU. */
  fast: number;
  /** Exact keys and values: host RAM. */
  host: number;
}

/** Where the fast tier lives: on a CPU both tiers share the RAM. */
export type FastTierPlace = "RAM" | "VRAM";

/**
 * Where a context's fast tier lives for the device the model runs on: the CUDA backend keeps a plain
 * ("full") cache in GPU memory, while HCAttention caches are host objects on every backend (the GPU
 * reaches them through pinned staging), so their tiers both take RAM.
 */
export function fastTierPlace(device: string, budget: string): FastTierPlace {
  return device === "cuda" && budget === "full" ? "VRAM" : "RAM";
}

export interface ContextPlan {
  tokens: number;
  budget: string;
  perToken: TierBytesPerToken;
  /** Per-context bytes that do not grow with tokens (the key codebooks). */
  fixedBytes: number;
  fastIn: FastTierPlace;
  /** Most tokens the cache holds (repoLlama.kv.maxTokensHeld: it evicts past them); absent: all of them. */
  capTokens?: number;
}

/** Bytes of a planned context per tier: of the tokens it holds. */
export function planBytes(plan: ContextPlan): { fast: number; host: number } {
  const held = plan.capTokens ? Math.min(plan.tokens, plan.capTokens) : plan.tokens;
  return { fast: held * plan.perToken.fast + plan.fixedBytes, host: held * plan.perToken.host };
}

/** What is free now: RAM for this process, and GPU memory when the fast tier lives there. */
export interface MemoryRoom {
  ramBytes: number;
  vramBytes?: number;
  /** KV bytes the current context holds already and that the planned one will reuse. */
  heldRamBytes?: number;
  heldVramBytes?: number;
}

/** Tokens per prefill chunk: the scratch buffers are sized for one chunk. */
export const PREFILL_BATCH = 512;
/** Tokens a probe context measures per-token bytes with: one whole block of the engine's tail estimate. */
export const PROBE_TOKENS = 64;

/** Activations and logits of one prefill chunk (f32): residual, attention and FFN intermediates, one row of logits. */
export function scratchBytes(info: Pick<ModelInfo, "nEmbd" | "nFf" | "nVocab">, batchTokens = PREFILL_BATCH): number {
  return 4 * (batchTokens * (4 * info.nEmbd + 2 * info.nFf) + 2 * info.nVocab);
}

/**
 * GPU memory a context's KV may still take: what the device has free (the weights are already there),
 * less one prefill chunk's activations, which the backend allocates beside them at its first forward pass.
 * undefined without a GPU figure (no CUDA device or a build without CUDA): then nothing is checked there.
 */
export function vramRoom(gpu: GpuMemory | undefined, info: Pick<ModelInfo, "nEmbd" | "nFf" | "nVocab">): number | undefined {
  return gpu === undefined ? undefined : Math.max(0, gpu.freeBytes - scratchBytes(info));
}

/**
 * Bytes per token of a measured probe context: `memory` holds exactly `tokens` tokens stored in one chunk,
 * so its buffers hold no growth slack.
 */
export function perTokenOf(memory: Pick<KvMemory, "fastBytes" | "hostBytes">, tokens: number): TierBytesPerToken {
  return { fast: memory.fastBytes / tokens, host: memory.hostBytes / tokens };
}

/**
 * Measures the configured budget's bytes per token: a probe context with the same KV options holds
 * PROBE_TOKENS ordinary tokens, stored in one chunk, and reports what each tier allocated. The codebooks
 * are trained only after the calibration tokens, so the probe holds none (they are the fixed part).
 */
export async function measureKvBytesPerToken(
  createContext: (tokens: number) => Context,
  info: Pick<ModelInfo, "bos" | "nVocab">,
): Promise<TierBytesPerToken> {
  const probe = createContext(PROBE_TOKENS);
  try {
    const ids = new Int32Array(PROBE_TOKENS);
    ids[0] = info.bos;
    // Ordinary token ids, clear of the control tokens at the end of the Llama-3 vocabulary.
    for (let i = 1; i < PROBE_TOKENS; i++) ids[i] = 1000 + ((i * 7919) % Math.max(1, Math.min(info.nVocab, 128000) - 1000));
    await probe.prefill(ids);
    return perTokenOf(probe.kvMemory(), PROBE_TOKENS);
  } finally {
    probe.dispose();
  }
}

/**
 * The key codebooks of one context: c centroids of d/g dims for each of g groups = c × d f16 values per
 * layer and KV head, allocated once calibration ends. Budgets without key codes have none.
 */
export function codebookBytes(info: Pick<ModelInfo, "nLayer" | "nHeadKv" | "headDim">, budget: string, centroids = 256): number {
  return budget === "25%" || budget === "12.5%" ? info.nLayer * info.nHeadKv * info.headDim * centroids * 2 : 0;
}

/**
 * The sentence that refuses the weights of a model that cannot fit, or undefined when they fit.
 */
export function weightsRefusal(fileName: string, weightsBytes: number, room: MemoryRoom): string | undefined {
  if (weightsBytes <= room.ramBytes) return undefined;
  return (
    `${fileName} needs at least ${formatGiB(weightsBytes)} of memory for its weights, but only ${formatGiB(room.ramBytes)} is available. ` +
    "Choose a smaller or more quantized model, or close other programs."
  );
}

/**
 * The sentence that refuses a repository context that would not fit, or undefined when it fits. It says
 * what the context needs per tier and how to make it fit: how many tokens would, a smaller budget, fewer files.
 */
export function contextRefusal(plan: ContextPlan, room: MemoryRoom): string | undefined {
  const need = planBytes(plan);
  const ramNeed = need.host + (plan.fastIn === "RAM" ? need.fast : 0);
  const ramRoom = room.ramBytes + (room.heldRamBytes ?? 0);
  const vramNeed = plan.fastIn === "VRAM" ? need.fast : 0;
  const vramRoom = (room.vramBytes ?? Number.POSITIVE_INFINITY) + (room.heldVramBytes ?? 0);
  const ramShort = ramNeed > ramRoom;
  const vramShort = vramNeed > vramRoom;
  if (!ramShort && !vramShort) return undefined;

  // The largest context that fits both places at this budget.
  const ramPerToken = plan.perToken.host + (plan.fastIn === "RAM" ? plan.perToken.fast : 0);
  const ramFixed = plan.fastIn === "RAM" ? plan.fixedBytes : 0;
  let fitting = Math.floor(Math.max(0, ramRoom - ramFixed) / Math.max(1, ramPerToken));
  if (plan.fastIn === "VRAM") fitting = Math.min(fitting, Math.floor(Math.max(0, vramRoom - plan.fixedBytes) / Math.max(1, plan.perToken.fast)));

  const tiers =
    `fast tier (${plan.fastIn}) ${formatGiB(need.fast)} at ${formatPerToken(plan.perToken.fast)}, ` +
    `host tier (RAM) ${formatGiB(need.host)} at ${formatPerToken(plan.perToken.host)}`;
  const short = [
    ramShort ? `${formatGiB(ramNeed)} of RAM where ${formatGiB(ramRoom)} is available` : "",
    vramShort ? `${formatGiB(vramNeed)} of GPU memory where ${formatGiB(vramRoom)} is free` : "",
  ].filter(Boolean);
  const held = plan.capTokens && plan.capTokens < plan.tokens ? `, holding at most ${plan.capTokens.toLocaleString("en-US")} of them,` : "";
  // An HCAttention cache can also hold fewer tokens than the repository has, dropping the least-attended.
  const capAdvice =
    plan.budget === "full"
      ? ""
      : plan.capTokens
        ? `lower repoLlama.kv.maxTokensHeld to ${fitting}, `
        : `set repoLlama.kv.maxTokensHeld to ${fitting} (the least-attended tokens are then dropped), `;
  return (
    `The repository context of ${plan.tokens.toLocaleString("en-US")} tokens${held} needs ${short.join(" and ")} ` +
    `(KV budget ${plan.budget}: ${tiers}). ` +
    `About ${fitting.toLocaleString("en-US")} tokens fit: leave files out with repoLlama.index.exclude or .repollamaignore, ` +
    `${vramShort ? gpuAdvice(plan.budget) : "choose another repoLlama.kv.budget"}, ${capAdvice}` +
    "or close other programs."
  );
}

/** How to take KV off the GPU: a plain cache is all there; an HCAttention budget keeps less there the smaller it is. */
function gpuAdvice(budget: string): string {
  return budget === "full"
    ? 'use an HCAttention repoLlama.kv.budget ("50%", "25%" or "12.5%": its cache stays in RAM)'
    : 'choose a smaller repoLlama.kv.budget ("12.5%" keeps the least on the GPU)';
}

/**
 * Memory this process can still use: what the system reports as available, capped by a cgroup limit
 * (containers, systemd slices), whose excess would end the process even with free RAM on the host, and by
 * REPO_LLAMA_MEMORY_LIMIT_MB when set (a share of a machine that others use too).
 */
export function availableMemory(): number {
  const free = os.freemem();
  const limits = [free, cgroupRoom(), configuredLimit()].filter((x): x is number => x !== undefined);
  return Math.min(...limits);
}

/** REPO_LLAMA_MEMORY_LIMIT_MB: memory this process may use beyond what it holds now. */
function configuredLimit(): number | undefined {
  const raw = process.env.REPO_LLAMA_MEMORY_LIMIT_MB;
  if (!raw) return undefined;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0) return undefined;
  return Math.max(0, mb * 2 ** 20 - process.memoryUsage().rss);
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

function formatPerToken(bytes: number): string {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB/token` : `${Math.round(bytes)} B/token`;
}
