// The native engine (hcattn.node): its typed surface and where it is found. The bundles in dist/ load
// the copy esbuild puts next to them; a source checkout falls back to the cmake-js build folder.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";

export interface BuildInfo {
  version: string;
  simd: "avx512" | "avx2" | "scalar";
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaNote: string;
}

/** CUDA device 0's memory now (cudaMemGetInfo): what other processes and this one's allocations leave. */
export interface GpuMemory {
  freeBytes: number;
  totalBytes: number;
}

export interface ModelInfo {
  name: string;
  architecture: string;
  quantization: string;
  parameters: number;
  fileBytes: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nFf: number;
  nVocab: number;
  bos: number;
  eos: number;
  digest: string;
  threads: number;
  /** Where the forward pass runs. */
  device: Device;
  /** That device in words: GPU name and memory, or CPU SIMD level and threads. */
  deviceName: string;
  /** Why CUDA is not used although it was requested or found ("" otherwise). */
  deviceNote: string;
}

export type Device = "cpu" | "cuda";
/** "auto": CUDA when the addon has it and a usable GPU is present, else the CPU. */
export type DeviceChoice = "auto" | Device;

export interface SamplingOptions {
  /** 0 (or less) is greedy. Default 0.8. */
  temperature?: number;
  /** 0: whole vocabulary. Default 40. */
  topK?: number;
  /** 1: off. Default 0.95. */
  topP?: number;
  /** 1: off (default). */
  repeatPenalty?: number;
  repeatLastN?: number;
  seed?: number;
}

export interface GenerateOptions {
  maxTokens?: number;
  sampling?: SamplingOptions;
  /** Stop strings; they are not part of the returned text. */
  stop?: string[];
  /** Extra stop token ids; end-of-generation tokens always stop. */
  stopTokens?: number[];
}

export interface GenerateResult {
  text: string;
  tokens: Int32Array;
  stopReason: "eog" | "stop" | "length" | "context" | "cancelled";
  stats: { promptTokens: number; generatedTokens: number; seconds: number; tokensPerSecond: number };
}

export interface PrefillProgress {
  done: number;
  total: number;
  tokensPerSecond: number;
}

export interface PrefillResult {
  evaluated: number;
  cancelled: boolean;
  seconds: number;
  tokensPerSecond: number;
}

export interface EvalLogitsResult {
  /** Per position: the K most likely next tokens as [id, natural-log probability], most likely first. */
  top: Array<Array<[number, number]>>;
  nVocab: number;
  /** With {full: true}: every position's log-probabilities over the whole vocabulary, (positions, nVocab). */
  logprobs?: Float32Array;
}

export interface PrefillOptions {
  /**
   * How the tokens attend when the context's kv.starBlock > 0: false (default) for the document phase,
   * star-attention blocks (exact attention to the first block and to the token's own aligned block; linear in the
   * context, and independent of how the document is split into calls); true for a question or turn, the
   * top-p selection over the whole cache. Without star blocks both are the same.
   */
  global?: boolean;
}

export interface Context {
  readonly nPast: number;
  readonly nCtx: number;
  readonly tokens: Int32Array;
  prefill(tokens: ArrayLike<number>, onProgress?: (p: PrefillProgress) => void, options?: PrefillOptions): Promise<PrefillResult>;
  evalLogits(tokens: ArrayLike<number>, topK?: number, options?: { full?: boolean }): Promise<EvalLogitsResult>;
  /**
   * Streams each token's text as it is produced; text that could start a stop string (or an unfinished
   * UTF-8 character) is held back and, if generation ends first, arrives in a last call with id -1.
   */
  generate(options: GenerateOptions, onToken?: (text: string, id: number) => void): Promise<GenerateResult>;
  /** Stops the running prefill (before its next chunk) or generation (before its next token). */
  cancel(): void;
  truncate(n: number): void;
  fork(nPrefix?: number): Context;
  /** Measured KV bytes per memory tier. */
  kvMemory(): KvMemory;
  /**
   * Writes the context atomically as a .hckv file (HCAttention modes only, not "full"). The segments tile
   * [0, nPast) in order, or are empty.
   */
  saveSnapshot(path: string, segments: SnapshotSegment[]): Promise<void>;
  /** Frees the KV cache now instead of at garbage collection. */
  dispose(): void;
}

export type KvMode = "full" | "50%" | "25%" | "12.5%";

/** HCAttention's KV budget; unset fields take the engine's defaults. */
export interface KvOptions {
  mode: KvMode;
  topP?: number;
  sinks?: number;
  recent?: number;
  kMax?: number;
  margin?: number;
  /** Factor on the key codes' worst-case residual bound (1: keep every token whose exact score could reach the cut). */
  boundScale?: number;
  /**
   * A KV head whose decode-step selection kept at least this share of the tokens attends exactly to all of
   * them for its next 15 steps, skipping scoring and selection, and for 15 more while the last step's exact
   * scores would still keep that share (0: select at every step; default 0.9).
   */
  denseShare?: number;
  /**
   * Most positions the cache holds (0 or absent: all). Past it the tokens that drew the least attention so
   * far are evicted for good (never the sinks or the recent window), so memory stays bounded while the
   * context keeps counting positions; saveSnapshot saves the tokens it holds.
   */
  valueCap?: number;
  /** Which tokens go first under valueCap: least attention per later position (default), least accumulated (H2O), oldest. */
  eviction?: "mean-mass" | "mass" | "oldest";
  centroids?: number;
  calibrationTokens?: number;
  /**
   * Prefill calls without {global: true} attend with star-attention blocks of this many positions (linear
   * in the context); 0: every prefill query uses the top-p selection (quadratic). Default 4096. See PrefillOptions.
   */
  starBlock?: number;
  rescore?: boolean;
  tail?: boolean;
  /**
   * "builtin": key codebooks trained once per model and KV config on a built-in code text (cached in
   * memory and in ContextOptions.codebookCacheDir; the first prefill of a model trains them); "workspace":
   * trained on the context's own first keys (default: better top-1 agreement at 25% on stories260K).
   */
  codebooks?: "builtin" | "workspace";
}

export interface KvMemory {
  mode: KvMode;
  tokens: number;
  fastBytes: number;
  hostBytes: number;
  /** Keys and values read straight from a mapped snapshot file (loadContext with mapSnapshot), not in RAM. */
  diskBytes: number;
  /** What one token would take in a plain f16 cache, for comparison. */
  f16BytesPerToken: number;
  /**
   * Share of the cached tokens the top-p selection kept (per query head, layer and step of questions and
   * decoding; a dense step keeps them all) since the context was made or loaded; absent before any and for
   * "full".
   */
  selectedShare?: number;
  /**
   * Share of the (layer, KV head) decode steps that attended every token without selecting, because that
   * head's last selection kept nearly all of them (KvOptions.denseShare); absent before any decode step.
   */
  denseStepShare?: number;
  /** Tokens evicted for good to stay within KvOptions.valueCap (tokens - evictedTokens are held). */
  evictedTokens: number;
}

/** A named token range of a saved context: [begin, end). */
export interface SnapshotSegment {
  id: string;
  hash: string;
  begin: number;
  end: number;
}

export interface ContextOptions {
  nCtx?: number;
  nBatch?: number;
  kvType?: "f32" | "f16";
  kv?: KvOptions;
  /** Folder for the built-in KV codebooks (one small file per model and KV config); unset: memory only. */
  codebookCacheDir?: string;
  /**
   * loadContext only: serve the snapshot's keys and values from the memory-mapped file instead of copying
   * them into RAM (tokens added later go to RAM). The file must not be rewritten in place meanwhile;
   * saveSnapshot replaces files by a rename, which is safe.
   */
  mapSnapshot?: boolean;
}

export interface Model {
  readonly info: ModelInfo;
  tokenize(text: string | Uint8Array, addBos?: boolean, parseSpecial?: boolean): Promise<Int32Array>;
  detokenize(ids: ArrayLike<number>, special?: boolean): string;
  tokenToPiece(id: number, special?: boolean): string;
  isEndOfGeneration(id: number): boolean;
  createContext(options?: ContextOptions): Context;
  /**
   * Loads a .hckv file saved with the same model and KV settings, keeping its first keepTokens tokens
   * (-1: all; otherwise 0 or a segment end). Throws for a damaged or foreign file.
   */
  loadContext(path: string, options: ContextOptions, keepTokens?: number): Promise<{ context: Context; segments: SnapshotSegment[] }>;
}

export interface ModelStatic {
  /** device "cuda" without a usable GPU loads on the CPU; info.deviceNote then says why. */
  load(path: string, options?: { threads?: number; device?: DeviceChoice; kv?: "full" }): Promise<Model>;
}

export interface HcattnAddon {
  buildInfo(): BuildInfo;
  /**
   * undefined when the build has no CUDA backend or no device is usable. The first call creates the
   * device's context (hundreds of MB of GPU memory), so ask only when the model runs on the GPU.
   */
  gpuMemory(): GpuMemory | undefined;
  Model: ModelStatic;
}

/** Places hcattn.node is looked for, in order. */
export function addonCandidates(): string[] {
  const here = __dirname;
  const list = [path.join(here, "hcattn.node"), path.join(here, "..", "build", "native", "Release", "hcattn.node")];
  // From src/engine/ (tests run against sources): the repository root is two levels up.
  list.push(path.join(here, "..", "..", "build", "native", "Release", "hcattn.node"));
  const override = process.env.HCATTN_ADDON;
  return override ? [override, ...list] : list;
}

let loaded: HcattnAddon | undefined;

/** Loads the engine once; throws an error that says how to build it when it is missing or broken. */
export function loadAddon(): HcattnAddon {
  if (loaded) return loaded;
  const candidates = addonCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `the native engine (hcattn.node) was not found; looked in:\n  ${candidates.join("\n  ")}\n` +
        "Build it with `npm run build` (or `npm run build:native && npm run build:ts`), or set HCATTN_ADDON to its path.",
    );
  }
  let addon: Partial<HcattnAddon>;
  try {
    addon = createRequire(__filename)(found) as Partial<HcattnAddon>;
  } catch (error) {
    throw new Error(
      `the native engine at ${found} could not be loaded: ${(error as Error).message}\n` +
        "It may have been built for another Node version or platform; rebuild it with `npm run build:native`.",
    );
  }
  if (typeof addon.Model?.load !== "function" || typeof addon.buildInfo !== "function") {
    throw new Error(`the native engine at ${found} is older than this code (no Model API); rebuild it with \`npm run build\``);
  }
  loaded = addon as HcattnAddon;
  return loaded;
}
