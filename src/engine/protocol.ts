// The sidecar protocol (DESIGN §4): every request and notification between the extension and the engine
// sidecar, declared once and imported by both ends. JSON-RPC 2.0 over the sidecar's stdio (vscode-jsonrpc).
// Methods are namespaced by the part they act on; params and results are plain JSON.
import { NotificationType, RequestType, RequestType0 } from "vscode-jsonrpc";
// Type-only: the settings' shapes, so that the sidecar bundle does not pull in vscode.
import type { Device, KvSettings } from "../config";

/** The KV cache settings (repoLlama.kv.*). */
export type KvConfig = KvSettings;

/** Error codes the sidecar answers with, besides JSON-RPC's own. */
export const EngineErrorCodes = {
  /** A context/* or chat/* request came before a successful engine/load. */
  noModel: 1001,
  /** The model file could not be loaded (not GGUF, unsupported, truncated…). */
  badModel: 1002,
  /** The model plus its context would not fit in this machine's memory. */
  doesNotFit: 1003,
  /** chat/ask named a context that a newer context/open replaced. */
  unknownContext: 1004,
  /** A request the current engine cannot serve yet. */
  unsupported: 1005,
  /** The request was cancelled ($/cancelRequest); same value as LSP's RequestCancelled. */
  cancelled: -32800,
} as const;

// ---------------------------------------------------------------------------------------------------
// engine/load

export interface LoadParams {
  modelPath: string;
  device: Device;
  /** CPU threads; 0 uses all cores. */
  threads: number;
  kv: KvConfig;
  /** Positions the repository context may hold; 0 uses the model's trained context length. */
  contextTokens: number;
  /** Folder for what the engine keeps across sessions besides contexts (the built-in KV codebooks); unset: memory only. */
  cacheDir?: string;
}

export interface ModelSummary {
  name: string;
  architecture: string;
  quantization: string;
  parameters: number;
  fileBytes: number;
  nCtxTrain: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** sha256 (hex) of the model's metadata, tensor table and tensor samples: keys caches to this model. */
  digest: string;
}

export interface LoadResult {
  model: ModelSummary;
  /** Positions a context of this model holds (what contextTokens resolved to). */
  contextTokens: number;
  /** Memory the engine will use for the weights and one full context, in bytes. */
  memoryBytes: number;
  /**
   * KV bytes one token of the context takes in each tier with the configured budget, measured by the
   * engine on a probe context (the memory guard plans with these). fast: GPU memory or hot RAM; host: RAM.
   */
  kvBytesPerToken: { fast: number; host: number };
  device: "cpu" | "cuda";
  /** Why the device is not the one asked for, when it is not (e.g. no usable GPU). */
  deviceNote?: string;
  threads: number;
  simd: string;
  seconds: number;
}

export const engineLoad = new RequestType<LoadParams, LoadResult, void>("engine/load");

// ---------------------------------------------------------------------------------------------------
// model/inspect

export interface InspectParams {
  modelPath: string;
}

/**
 * Validates a model file as engine/load would (GGUF structure, architecture, tensors, tokenizer) and
 * describes it, without loading it for use: "Select Model" shows this before it changes the setting.
 * Fails with badModel and a sentence saying what is wrong with the file.
 */
export const modelInspect = new RequestType<InspectParams, ModelSummary, void>("model/inspect");

// ---------------------------------------------------------------------------------------------------
// context/open and context/progress

/** One part of the prompt (src/workspace/types.ts Segment, minus what the engine does not need). */
export interface SegmentRef {
  /** "head", a workspace-relative file path, or "tail". */
  id: string;
  text: string;
  hash: string;
  /** sha256(previous chainHash + hash): equal chain hashes mean equal prompts up to here. */
  chainHash: string;
}

export interface OpenParams {
  segments: SegmentRef[];
  /** Folder of the snapshot store for this workspace and model; "" when saving is off. */
  snapshotDir: string;
  /** Absolute path of the workspace folder: names its saved context (default: the snapshot folder). */
  workspaceFolder?: string;
  /**
   * Cap on the saved contexts in snapshotDir (repoLlama.cache.maxDiskGB), in bytes: after a save the least
   * recently used ones beyond it are deleted, never the context in use. 0: saving is off. Absent: no cap.
   */
  maxDiskBytes?: number;
}

export type ContextSource = "memory" | "disk" | "prefill";

export interface OpenResult {
  /** Names this exact context in chat/ask; a later context/open that changes it invalidates the id. */
  contextId: string;
  /** Tokens in the context. */
  tokens: number;
  /** Tokens kept from the context already in memory (or on disk) instead of being prefilled. */
  reusedTokens: number;
  /** Where most of the context came from: all of it reused from memory or disk, else a prefill. */
  source: ContextSource;
  /** Segments whose tokens were reused. */
  reusedSegments: number;
  prefillSeconds: number;
  /** Prefill speed of this call (0 when nothing was prefilled). */
  tokensPerSecond: number;
}

export const contextOpen = new RequestType<OpenParams, OpenResult, void>("context/open");

export interface ProgressParams {
  contextId: string;
  /** Tokens in the context so far, reused ones included. */
  doneTokens: number;
  totalTokens: number;
  /** Prefill speed of this call so far. */
  tokensPerSecond: number;
}

export const contextProgress = new NotificationType<ProgressParams>("context/progress");

export interface SaveParams {
  contextId: string;
  snapshotDir: string;
  /** As in OpenParams; absent: the cap of the latest context/open. */
  maxDiskBytes?: number;
}

export interface SaveResult {
  path: string;
  bytes: number;
  seconds: number;
}

export const contextSave = new RequestType<SaveParams, SaveResult, void>("context/save");

// ---------------------------------------------------------------------------------------------------
// chat/ask and chat/token

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface SamplingParams {
  /** 0 is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  repeatPenalty?: number;
  seed?: number;
}

export interface AskParams {
  contextId: string;
  /** Chosen by the caller; every chat/token of this request carries it. */
  requestId: string;
  /** The conversation so far, ending with the user's question. */
  messages: ChatMessage[];
  maxTokens: number;
  sampling?: SamplingParams;
}

export type StopReason = "eog" | "stop" | "length" | "context" | "cancelled";

export interface AskStats {
  /** Repository tokens reused from the context: the prefix is never recomputed for a question. */
  reusedTokens: number;
  /** Tokens of the conversation prefilled for this question. */
  questionTokens: number;
  generatedTokens: number;
  /** From receiving the request to the first generated token. */
  timeToFirstTokenMs: number;
  /** Decoding speed. */
  tokensPerSecond: number;
}

export interface AskResult {
  text: string;
  stopReason: StopReason;
  stats: AskStats;
}

export const chatAsk = new RequestType<AskParams, AskResult, void>("chat/ask");

export interface TokenParams {
  requestId: string;
  text: string;
}

export const chatToken = new NotificationType<TokenParams>("chat/token");

// ---------------------------------------------------------------------------------------------------
// engine/stats and engine/shutdown

export interface MemoryTiers {
  /** KV cache in GPU memory or hot RAM. */
  fastBytes: number;
  /** KV values in host RAM. */
  hostBytes: number;
  /** Snapshot files on disk. */
  diskBytes: number;
}

export interface StatsResult {
  /** Undefined before engine/load. */
  model?: { name: string; digest: string };
  memory: MemoryTiers;
  /** KV bytes in use / allowed for the repository context. */
  kvBytesInUse: number;
  kvBytesBudget: number;
  contextTokens: number;
  /** Tokens of the context dropped for good to stay within repoLlama.kv.maxTokensHeld (the rest are held). */
  evictedTokens: number;
  /** Resident memory of the sidecar process. */
  rssBytes: number;
  /** Latest measured speeds (0 before the first prefill / answer). */
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

export const engineStats = new RequestType0<StatsResult, void>("engine/stats");

/** Answers, then the sidecar exits with status 0. */
export const engineShutdown = new RequestType0<void, void>("engine/shutdown");
