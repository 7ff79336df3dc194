// The engine sidecar: a Node process that owns the native addon and serves the protocol of
// src/engine/protocol.ts as JSON-RPC over its stdio. stdout carries only protocol messages; every log
// line goes to stderr, which the extension shows in the "Repo Llama Engine" output channel.
import * as path from "node:path";
import {
  type CancellationToken,
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-jsonrpc/node";
import {
  type ContextOptions,
  type HcattnAddon,
  type KvMemory,
  type KvOptions,
  loadAddon,
  type Model,
  type ModelInfo,
} from "../engine/addon";
import {
  chatAsk,
  chatToken,
  contextOpen,
  contextProgress,
  contextSave,
  EngineErrorCodes,
  engineLoad,
  engineShutdown,
  engineStats,
  type InspectParams,
  type LoadParams,
  type KvConfig,
  type LoadResult,
  type ModelSummary,
  modelInspect,
  type SaveResult,
  type StatsResult,
} from "../engine/protocol";
import { checkGgufFile, ModelFileError } from "../model/modelFile";
import { mkdir, rm } from "node:fs/promises";
import {
  availableMemory,
  codebookBytes,
  type ContextPlan,
  contextRefusal,
  fastTierPlace,
  formatGiB,
  type MemoryRoom,
  measureKvBytesPerToken,
  planBytes,
  PREFILL_BATCH,
  scratchBytes,
  type TierBytesPerToken,
  vramRoom,
  weightsRefusal,
} from "./memory";
import { ContextSession, type OperationHooks, type SnapshotPlace } from "./sessions";
import { ENGINE_SUFFIX, SnapshotStore } from "./snapshots";

// A library that prints with console.log would corrupt the protocol stream.
console.log = console.error;
console.info = console.error;

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

interface Loaded {
  model: Model;
  session: ContextSession;
  kv: KvOptions;
  /** The configured budget's KV bytes per token, measured by the engine. */
  perToken: TierBytesPerToken;
}

/** Share of a plain f16 cache that each budget keeps in the fast tier. */
const BUDGET_SHARE: Record<KvOptions["mode"], number> = { full: 1, "50%": 0.5, "25%": 0.25, "12.5%": 0.125 };

/**
 * The engine's HCAttention options for the repoLlama.kv settings. The star-attention block and the codebooks
 * keep the engine's defaults: star blocks make the repository prefill linear in its size (each token attends
 * exactly to the first block and to its own; questions still attend to the whole cache through the top-p
 * selection), and the engine's results do not depend on how the prefix is split into calls, so re-prefilling
 * an edited tail equals a full prefill.
 */
function kvOptionsOf(kv: KvConfig): KvOptions {
  if (kv.budget === "full") return { mode: "full" };
  const options: KvOptions = { mode: kv.budget, topP: kv.topP, sinks: kv.sinkTokens, recent: kv.recentTokens };
  const cap = kv.maxTokensHeld ?? 0;
  if (cap > 0) {
    // The engine makes room before each prefill chunk, beside the sinks and the recent window.
    const least = kv.sinkTokens + kv.recentTokens + PREFILL_BATCH + 64;
    if (cap < least) {
      throw new Error(
        `repoLlama.kv.maxTokensHeld is ${cap}: use 0 (hold every token) or at least ${least} ` +
          `(the sink and recent tokens, one prefill chunk of ${PREFILL_BATCH} and 64 more).`,
      );
    }
    options.valueCap = cap;
  }
  return options;
}

/**
 * The saved context of this workspace, model and KV layout. The store names it, lists the folder and keeps
 * it under the cap; the engine writes and verifies the file itself (its .hckv carries its own checksums).
 */
function snapshotFileOf(folder: string, workspace: string, modelDigest: string, kv: KvOptions): string {
  const name = SnapshotStore.fileNameOf({ workspaceFolder: workspace, modelDigest, kvConfig: { ...kv } });
  return path.join(folder, name.replace(/\.snap$/, ENGINE_SUFFIX));
}

/** The store of a snapshot folder under the cap of the latest context/open (none given: no cap). */
function storeOf(folder: string): SnapshotStore {
  return new SnapshotStore(folder, maxDiskBytes ?? Number.POSITIVE_INFINITY);
}

/**
 * Saves the context, marks it as the most recently used one and deletes the least recently used saved
 * contexts beyond the cap, never this one. A context that alone exceeds the cap is not kept on disk.
 */
function saveUnderCap(session: ContextSession, file: string): Promise<{ bytes: number; seconds: number; evicted: string[] }> {
  return session.save(file, async (saved) => {
    const store = storeOf(path.dirname(file));
    await store.markUsed(file);
    const evicted = await store.evictBeyondCap(file);
    for (const gone of evicted) log(`deleted the saved context ${gone}: the snapshot folder is over repoLlama.cache.maxDiskGB`);
    if (saved.bytes > store.maxBytes) {
      await rm(file, { force: true });
      throw new Error(
        `the context's snapshot is ${formatGiB(saved.bytes)} but repoLlama.cache.maxDiskGB allows ${formatGiB(store.maxBytes)}; ` +
          "raise it to keep this context across sessions",
      );
    }
    return { ...saved, evicted };
  });
}

/** Bytes of the saved contexts in a folder: the store's envelopes and the engine's .hckv files. */
async function snapshotBytes(folder: string): Promise<number> {
  return (await new SnapshotStore(folder, 0).list()).reduce((sum, entry) => sum + entry.bytes, 0);
}

let loaded: Loaded | undefined;
/** The snapshot folder of the latest context/open, whose files engine/stats counts as the disk tier. */
let snapshotDir = "";
/** The cap on that folder (repoLlama.cache.maxDiskGB) in bytes; undefined: none was given. */
let maxDiskBytes: number | undefined;
/** Names the workspace in snapshot file names: the latest context/open's, else its snapshot folder. */
let workspaceKey = "";

const connection = createMessageConnection(new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));

function hooksOf(token: CancellationToken): OperationHooks {
  return {
    isCancelled: () => token.isCancellationRequested,
    onCancel: (listener) => token.onCancellationRequested(listener),
  };
}

function requireLoaded(): Loaded {
  if (!loaded) throw new ResponseError(EngineErrorCodes.noModel, "No model is loaded; send engine/load first.");
  return loaded;
}

async function load(params: LoadParams): Promise<LoadResult> {
  const started = performance.now();
  const modelPath = params.modelPath;
  const fileName = path.basename(modelPath);
  let fileBytes: number;
  try {
    fileBytes = (await checkGgufFile(modelPath)).bytes;
  } catch (error) {
    if (!(error instanceof ModelFileError)) throw error;
    throw new ResponseError(
      EngineErrorCodes.badModel,
      `${error.message} Choose a Llama-3 model in GGUF format with "Repo Llama: Select Model" or "Repo Llama: Download Model".`,
    );
  }
  const weightsProblem = weightsRefusal(fileName, fileBytes, { ramBytes: availableMemory() });
  if (weightsProblem) throw new ResponseError(EngineErrorCodes.doesNotFit, weightsProblem);

  const addon = engineAddon();
  const build = addon.buildInfo();

  if (loaded) {
    loaded.session.dispose();
    loaded = undefined;
  }
  let model: Model;
  try {
    // repoLlama.device: "cuda" without a usable GPU loads on the CPU and info.deviceNote says why.
    model = await addon.Model.load(modelPath, { threads: params.threads, device: params.device });
  } catch (error) {
    throw new ResponseError(
      EngineErrorCodes.badModel,
      `${fileName} could not be loaded: ${(error as Error).message}. Choose another Llama-3 GGUF model with "Repo Llama: Select Model".`,
    );
  }
  const info = model.info;
  const contextTokens = params.contextTokens > 0 ? params.contextTokens : info.nCtxTrain;
  const kv = kvOptionsOf(params.kv);
  const contextOptions: ContextOptions = {
    nCtx: contextTokens,
    nBatch: PREFILL_BATCH,
    kvType: "f16",
    kv,
    ...(params.cacheDir ? { codebookCacheDir: path.join(params.cacheDir, "codebooks") } : {}),
  };
  // Measured, not a formula: HCAttention keeps exact keys and values in the host tier, so its budget moves
  // bytes between tiers more than it removes them.
  const perToken = await measureKvBytesPerToken(
    // Codebooks trained on the probe's own keys, and only after its tokens: the probe holds none (they are
    // the fixed part of a context) and measures what grows per token.
    (tokens) =>
      model.createContext({ ...contextOptions, nCtx: tokens, nBatch: tokens, kv: { ...kv, codebooks: "workspace", calibrationTokens: 2 * tokens } }),
    info,
  );
  const fastIn = fastTierPlace(info.device, kv.mode);
  const plan = (tokens: number): ContextPlan => ({
    tokens,
    budget: kv.mode,
    perToken,
    fixedBytes: codebookBytes(info, kv.mode),
    fastIn,
    ...(kv.valueCap ? { capTokens: kv.valueCap } : {}),
  });
  // What the KV may take now, crediting what the current context holds per tier (the new one reuses it).
  // GPU memory is asked for only when the fast tier lives there (the first query creates a CUDA context).
  const room = (held: Pick<KvMemory, "fastBytes" | "hostBytes"> = { fastBytes: 0, hostBytes: 0 }): MemoryRoom =>
    fastIn === "VRAM"
      ? { ramBytes: kvRoom(info), heldRamBytes: held.hostBytes, vramBytes: vramRoom(addon.gpuMemory(), info), heldVramBytes: held.fastBytes }
      : { ramBytes: kvRoom(info), heldRamBytes: held.fastBytes + held.hostBytes };
  const planned = planBytes(plan(contextTokens));
  // A plain cache is allocated whole when the context is created; an HCAttention cache grows with the
  // repository, so context/open checks that one against the workspace's real size.
  if (kv.mode === "full") {
    const refusal = contextRefusal(plan(contextTokens), room());
    if (refusal) {
      throw new ResponseError(EngineErrorCodes.doesNotFit, `${refusal} A plain ("full") cache is allocated whole: lower repoLlama.contextBudgetTokens or use an HCAttention budget.`);
    }
  }

  const ctx = model.createContext(contextOptions);
  const guard = (tokens: number, held: Pick<KvMemory, "fastBytes" | "hostBytes">) => contextRefusal(plan(tokens), room(held));
  loaded = { model, session: new ContextSession(model, ctx, contextOptions, guard), kv, perToken };
  const memoryBytes = info.fileBytes + scratchBytes(info) + planned.fast + planned.host;
  const gpu = info.device === "cuda" ? addon.gpuMemory() : undefined;
  const gpuNote = gpu ? `, ${formatGiB(gpu.freeBytes)} of ${formatGiB(gpu.totalBytes)} GPU memory free` : "";
  const seconds = (performance.now() - started) / 1000;
  log(
    `loaded ${modelPath}: ${info.name}, ${info.quantization}, ${info.nLayer} layers, context ${contextTokens} tokens, ` +
      `KV ${kv.mode} at ${perToken.fast.toFixed(0)} + ${perToken.host.toFixed(0)} bytes/token (fast + host), ` +
      `${formatGiB(memoryBytes)} for a full context, ${info.threads} threads, ${build.simd}, on ${info.device} (${info.deviceName})${gpuNote}, ${seconds.toFixed(2)} s` +
      (info.deviceNote ? `; ${info.deviceNote}` : ""),
  );
  return {
    model: summaryOf(model),
    contextTokens,
    memoryBytes,
    kvBytesPerToken: perToken,
    device: info.device,
    deviceNote: info.deviceNote || undefined,
    threads: info.threads,
    simd: build.simd,
    seconds,
  };
}

/**
 * RAM the KV cache may still take: what is available, less the weights not resident yet (every page is
 * read for each token, so they must stay resident) and one prefill chunk's scratch.
 */
function kvRoom(info: ModelInfo): number {
  const residentWeights = Math.min(info.fileBytes, process.memoryUsage().rss);
  return Math.max(0, availableMemory() - (info.fileBytes - residentWeights) - scratchBytes(info));
}

function engineAddon(): HcattnAddon {
  try {
    return loadAddon();
  } catch (error) {
    throw new ResponseError(EngineErrorCodes.unsupported, (error as Error).message);
  }
}

function summaryOf(model: Model): ModelSummary {
  const info = model.info;
  return {
    name: info.name,
    architecture: info.architecture,
    quantization: info.quantization,
    parameters: info.parameters,
    fileBytes: info.fileBytes,
    nCtxTrain: info.nCtxTrain,
    layers: info.nLayer,
    heads: info.nHead,
    kvHeads: info.nHeadKv,
    headDim: info.headDim,
    vocab: info.nVocab,
    digest: info.digest,
  };
}

/** model/inspect: the engine's full validation of a file, with nothing kept loaded afterwards. */
async function inspect(params: InspectParams): Promise<ModelSummary> {
  const fileName = path.basename(params.modelPath);
  try {
    await checkGgufFile(params.modelPath);
  } catch (error) {
    if (!(error instanceof ModelFileError)) throw error;
    throw new ResponseError(EngineErrorCodes.badModel, error.message);
  }
  const addon = engineAddon();
  try {
    // One thread: validation reads the header and the tensor table, it computes nothing.
    return summaryOf(await addon.Model.load(params.modelPath, { threads: 1 }));
  } catch (error) {
    throw new ResponseError(EngineErrorCodes.badModel, `${fileName} cannot be used: ${sentence((error as Error).message)}`);
  }
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

async function stats(): Promise<StatsResult> {
  const rssBytes = process.memoryUsage().rss;
  const diskBytes = snapshotDir ? await snapshotBytes(snapshotDir) : 0;
  if (!loaded) {
    return {
      memory: { fastBytes: 0, hostBytes: 0, diskBytes },
      kvBytesInUse: 0,
      kvBytesBudget: 0,
      contextTokens: 0,
      evictedTokens: 0,
      rssBytes,
      prefillTokensPerSecond: 0,
      decodeTokensPerSecond: 0,
    };
  }
  const { session, model } = loaded;
  // Measured by the engine: what each tier holds now, not what a plain cache would.
  const measured = session.context.kvMemory();
  const kvBytesBudget = Math.ceil(session.capacity * measured.f16BytesPerToken * BUDGET_SHARE[measured.mode]);
  return {
    model: { name: model.info.name, digest: model.info.digest },
    memory: { fastBytes: measured.fastBytes, hostBytes: measured.hostBytes, diskBytes },
    kvBytesInUse: measured.fastBytes + measured.hostBytes,
    kvBytesBudget,
    contextTokens: session.tokens,
    evictedTokens: measured.evictedTokens,
    rssBytes,
    prefillTokensPerSecond: session.lastPrefillTokensPerSecond,
    decodeTokensPerSecond: session.lastDecodeTokensPerSecond,
  };
}

// Loads run one after another: a second engine/load (the user picked another model meanwhile) waits
// for the first, then replaces it.
let loading: Promise<unknown> = Promise.resolve();
connection.onRequest(engineLoad, (params) => {
  const result = loading.then(() => load(params));
  loading = result.catch(() => undefined);
  return result;
});

/** The snapshot file of the loaded model in a folder, or undefined when the KV mode cannot be saved. */
function snapshotPlaceOf(current: Loaded, folder: string): SnapshotPlace | undefined {
  // A plain ("full") cache has no snapshot format in the engine.
  if (!folder || current.kv.mode === "full") return undefined;
  return { file: snapshotFileOf(folder, workspaceKey || folder, current.model.info.digest, current.kv), log };
}

connection.onRequest(contextOpen, async (params, token) => {
  const current = requireLoaded();
  snapshotDir = params.snapshotDir;
  workspaceKey = params.workspaceFolder ?? "";
  maxDiskBytes = params.maxDiskBytes;
  const contextId = params.segments.length ? params.segments[params.segments.length - 1].chainHash : "";
  const place = snapshotPlaceOf(current, params.snapshotDir);
  const result = await current.session.open(
    params,
    {
      ...hooksOf(token),
      progress: (doneTokens, totalTokens, tokensPerSecond) =>
        void connection.sendNotification(contextProgress, { contextId, doneTokens, totalTokens, tokensPerSecond }),
    },
    place,
  );
  if (result.tokensPerSecond > 0) {
    const first = params.segments[result.reusedSegments]?.id ?? "";
    log(
      `prefilled ${(result.tokens - result.reusedTokens).toLocaleString("en-US")} tokens from segment ${result.reusedSegments} (${first}) ` +
        `in ${result.prefillSeconds.toFixed(2)} s; reused ${result.reusedTokens.toLocaleString("en-US")} tokens of ${result.reusedSegments} segments`,
    );
  }
  if (place && result.source === "disk") await storeOf(params.snapshotDir).markUsed(place.file);
  // A prefilled prefix is saved right away, so that the next session of the editor loads it from disk.
  // It runs after the answer, queued behind it on the context: a question asked meanwhile waits for it.
  if (place && result.tokensPerSecond > 0 && maxDiskBytes !== 0) {
    void saveUnderCap(current.session, place.file).then(
      (saved) => log(`saved ${result.tokens} tokens to ${place.file}: ${saved.bytes} bytes in ${saved.seconds.toFixed(3)} s`),
      (error: Error) => log(`saving the context to ${place.file} failed: ${error.message}`),
    );
  }
  return result;
});

connection.onRequest(modelInspect, (params) => inspect(params));

connection.onRequest(chatAsk, (params, token) => {
  const { session } = requireLoaded();
  return session.ask(params, {
    ...hooksOf(token),
    token: (text) => void connection.sendNotification(chatToken, { requestId: params.requestId, text }),
  });
});

connection.onRequest(contextSave, async (params): Promise<SaveResult> => {
  const current = requireLoaded();
  if (current.kv.mode === "full") {
    throw new ResponseError(
      EngineErrorCodes.unsupported,
      'Contexts are saved only with an HCAttention budget; set repoLlama.kv.budget to "50%", "25%" or "12.5%".',
    );
  }
  if (params.contextId !== current.session.contextId || params.contextId === "") {
    throw new ResponseError(EngineErrorCodes.unknownContext, "The context to save is not the one open now; open it again with context/open.");
  }
  const folder = params.snapshotDir || snapshotDir;
  if (!folder) throw new ResponseError(EngineErrorCodes.unsupported, "context/save needs a snapshotDir (saving is off when it is empty).");
  if (params.maxDiskBytes !== undefined) maxDiskBytes = params.maxDiskBytes;
  if (maxDiskBytes === 0) throw new ResponseError(EngineErrorCodes.unsupported, "Saving contexts is off (repoLlama.cache.maxDiskGB is 0).");
  await mkdir(folder, { recursive: true });
  const place = snapshotPlaceOf(current, folder);
  if (!place) throw new ResponseError(EngineErrorCodes.unsupported, "This context cannot be saved.");
  let saved: Awaited<ReturnType<typeof saveUnderCap>>;
  try {
    saved = await saveUnderCap(current.session, place.file);
  } catch (error) {
    throw new ResponseError(EngineErrorCodes.unsupported, sentence((error as Error).message));
  }
  log(`saved ${current.session.tokens} tokens to ${place.file}: ${saved.bytes} bytes in ${saved.seconds.toFixed(3)} s`);
  return { path: place.file, bytes: saved.bytes, seconds: saved.seconds };
});

connection.onRequest(engineStats, () => stats());

connection.onRequest(engineShutdown, () => {
  log("shutdown requested");
  // Answer first, then exit once the answer is written and a save in progress has finished: its file is
  // what the next session loads.
  setImmediate(() => void (loaded ? loaded.session.idle() : Promise.resolve()).finally(() => exit(0)));
});

// The extension closed our stdin (it quit or crashed): nobody is left to answer.
connection.onClose(() => exit(0));

function exit(code: number): void {
  loaded?.session.dispose();
  process.exit(code);
}

process.on("uncaughtException", (error) => {
  log(`fatal: ${error.stack ?? error.message}`);
  process.exit(1);
});

connection.listen();
log(`sidecar ready (pid ${process.pid}, node ${process.version})`);
