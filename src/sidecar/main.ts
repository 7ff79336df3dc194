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
  type KvOptions,
  loadAddon,
  type Model,
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
  type LoadParams,
  type KvConfig,
  type LoadResult,
  type SaveResult,
  type StatsResult,
} from "../engine/protocol";
import { checkGgufFile, ModelFileError } from "../model/modelFile";
import { mkdir, readdir, stat as statFile } from "node:fs/promises";
import { availableMemory, doesNotFitMessage, formatGiB, memoryNeed, totalNeed } from "./memory";
import { ContextSession, type OperationHooks, type SnapshotPlace } from "./sessions";
import { SnapshotStore } from "./snapshots";

/** The context's KV cache holds f16 values: half the memory of f32, and what llama.cpp uses by default. */
const KV_BYTES_PER_VALUE = 2;
const PREFILL_BATCH = 512;

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
}

/** Share of a plain f16 cache that each budget keeps in the fast tier. */
const BUDGET_SHARE: Record<KvOptions["mode"], number> = { full: 1, "50%": 0.5, "25%": 0.25, "12.5%": 0.125 };

/** The engine's HCAttention options for the repoLlama.kv settings. */
function kvOptionsOf(kv: KvConfig): KvOptions {
  if (kv.budget === "full") return { mode: "full" };
  return { mode: kv.budget, topP: kv.topP, sinks: kv.sinkTokens, recent: kv.recentTokens };
}

const SNAPSHOT_SUFFIX = ".hckv";

/**
 * The saved context of this workspace, model and KV layout. The store names it and lists the folder; the
 * engine writes and verifies the file itself (its .hckv carries its own checksums, and wrapping multi-GB
 * files in the store's envelope would read and write every byte twice).
 */
function snapshotFileOf(folder: string, workspace: string, modelDigest: string, kv: KvOptions): string {
  const name = SnapshotStore.fileNameOf({ workspaceFolder: workspace, modelDigest, kvConfig: { ...kv } });
  return path.join(folder, name.replace(/\.snap$/, SNAPSHOT_SUFFIX));
}

/** Bytes of the saved contexts in a folder: the store's envelopes and the engine's .hckv files. */
async function snapshotBytes(folder: string): Promise<number> {
  const inStore = (await new SnapshotStore(folder, 0).list()).reduce((sum, entry) => sum + entry.bytes, 0);
  let engineFiles = 0;
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    if (name.endsWith(SNAPSHOT_SUFFIX)) engineFiles += (await statFile(path.join(folder, name)).catch(() => ({ size: 0 }))).size;
  }
  return inStore + engineFiles;
}

let loaded: Loaded | undefined;
/** The snapshot folder of the latest context/open, whose files engine/stats counts as the disk tier. */
let snapshotDir = "";
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
  const available = availableMemory();
  if (fileBytes > available) {
    throw new ResponseError(
      EngineErrorCodes.doesNotFit,
      `${fileName} needs at least ${formatGiB(fileBytes)} of memory for its weights, but only ${formatGiB(available)} is available. ` +
        "Choose a smaller or more quantized model, or close other programs.",
    );
  }

  let addon: HcattnAddon;
  try {
    addon = loadAddon();
  } catch (error) {
    throw new ResponseError(EngineErrorCodes.unsupported, (error as Error).message);
  }
  if (typeof addon.Model?.load !== "function") {
    throw new ResponseError(
      EngineErrorCodes.unsupported,
      "The native engine (hcattn.node) was built from older sources and cannot load models; rebuild it with `npm run build`.",
    );
  }
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
  // Planned as a plain f16 cache: HCAttention's host tier lives in RAM too, so the budget moves bytes
  // between tiers more than it removes them; engine/stats reports what the context measures.
  const need = memoryNeed(info, contextTokens, KV_BYTES_PER_VALUE, PREFILL_BATCH);
  // The weights are loaded now, so the system counts them as used: only the context must still fit.
  const refusal = doesNotFitMessage(need, availableMemory(), contextTokens, Math.min(info.fileBytes, process.memoryUsage().rss));
  if (refusal) throw new ResponseError(EngineErrorCodes.doesNotFit, refusal);

  const contextOptions: ContextOptions = { nCtx: contextTokens, nBatch: PREFILL_BATCH, kvType: "f16", kv };
  const ctx = model.createContext(contextOptions);
  loaded = { model, session: new ContextSession(model, ctx, contextOptions), kv };
  const seconds = (performance.now() - started) / 1000;
  log(
    `loaded ${modelPath}: ${info.name}, ${info.quantization}, ${info.nLayer} layers, context ${contextTokens} tokens, ` +
      `KV ${kv.mode}, ${formatGiB(totalNeed(need))} planned, ${info.threads} threads, ${build.simd}, on ${info.device} (${info.deviceName}), ${seconds.toFixed(2)} s` +
      (info.deviceNote ? `; ${info.deviceNote}` : ""),
  );
  return {
    model: {
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
    },
    contextTokens,
    memoryBytes: totalNeed(need),
    device: info.device,
    deviceNote: info.deviceNote || undefined,
    threads: info.threads,
    simd: build.simd,
    seconds,
  };
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
  // A prefilled prefix is saved right away, so that the next session of the editor loads it from disk.
  // It runs after the answer, queued behind it on the context: a question asked meanwhile waits for it.
  if (place && result.tokensPerSecond > 0) {
    void current.session.save(place.file).then(
      (saved) => log(`saved ${result.tokens} tokens to ${place.file}: ${saved.bytes} bytes in ${saved.seconds.toFixed(3)} s`),
      (error: Error) => log(`saving the context to ${place.file} failed: ${error.message}`),
    );
  }
  return result;
});

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
  await mkdir(folder, { recursive: true });
  const place = snapshotPlaceOf(current, folder);
  if (!place) throw new ResponseError(EngineErrorCodes.unsupported, "This context cannot be saved.");
  const saved = await current.session.save(place.file);
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
