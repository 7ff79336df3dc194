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
import { type HcattnAddon, loadAddon, type Model } from "../engine/addon";
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
  type LoadResult,
  type StatsResult,
} from "../engine/protocol";
import { checkGgufFile, ModelFileError } from "../model/modelFile";
import { availableMemory, doesNotFitMessage, formatGiB, kvBytesPerToken, memoryNeed, totalNeed } from "./memory";
import { ContextSession, type OperationHooks } from "./sessions";
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
  kvBytesPerToken: number;
}

let loaded: Loaded | undefined;
/** The snapshot folder of the latest context/open, whose files engine/stats counts as the disk tier. */
let snapshotDir = "";

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
  if (params.device === "cuda" && build.cudaDevices === 0) {
    throw new ResponseError(
      EngineErrorCodes.unsupported,
      `repoLlama.device is "cuda" but no CUDA GPU is usable (${build.cudaNote || "this build has no CUDA support"}). Set it to "auto" or "cpu".`,
    );
  }
  const deviceNote =
    params.device === "cpu"
      ? undefined
      : build.cudaDevices > 0
        ? "This engine build runs models on the CPU; the GPU path comes with the CUDA backend."
        : build.cudaNote || undefined;

  if (loaded) {
    loaded.session.dispose();
    loaded = undefined;
  }
  let model: Model;
  try {
    model = await addon.Model.load(modelPath, { threads: params.threads });
  } catch (error) {
    throw new ResponseError(
      EngineErrorCodes.badModel,
      `${fileName} could not be loaded: ${(error as Error).message}. Choose another Llama-3 GGUF model with "Repo Llama: Select Model".`,
    );
  }
  const info = model.info;
  const contextTokens = params.contextTokens > 0 ? params.contextTokens : info.nCtxTrain;
  const need = memoryNeed(info, contextTokens, KV_BYTES_PER_VALUE, PREFILL_BATCH);
  // The weights are loaded now, so the system counts them as used: only the context must still fit.
  const refusal = doesNotFitMessage(need, availableMemory(), contextTokens, Math.min(info.fileBytes, process.memoryUsage().rss));
  if (refusal) throw new ResponseError(EngineErrorCodes.doesNotFit, refusal);

  const ctx = model.createContext({ nCtx: contextTokens, nBatch: PREFILL_BATCH, kvType: "f16" });
  loaded = { model, session: new ContextSession(model, ctx), kvBytesPerToken: kvBytesPerToken(info, KV_BYTES_PER_VALUE) };
  const seconds = (performance.now() - started) / 1000;
  log(
    `loaded ${modelPath}: ${info.name}, ${info.quantization}, ${info.nLayer} layers, context ${contextTokens} tokens, ` +
      `${formatGiB(totalNeed(need))} planned, ${info.threads} threads, ${build.simd}, ${seconds.toFixed(2)} s`,
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
    device: "cpu",
    deviceNote,
    threads: info.threads,
    simd: build.simd,
    seconds,
  };
}

async function stats(): Promise<StatsResult> {
  const rssBytes = process.memoryUsage().rss;
  const snapshots = snapshotDir ? await new SnapshotStore(snapshotDir, 0).list() : [];
  const diskBytes = snapshots.reduce((sum, entry) => sum + entry.bytes, 0);
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
  const kvBytesBudget = session.capacity * loaded.kvBytesPerToken;
  return {
    model: { name: model.info.name, digest: model.info.digest },
    // The plain cache is allocated whole, in RAM: all of it is the fast tier until HCAttention tiers it.
    memory: { fastBytes: kvBytesBudget, hostBytes: 0, diskBytes },
    kvBytesInUse: session.tokens * loaded.kvBytesPerToken,
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

connection.onRequest(contextOpen, (params, token) => {
  const { session } = requireLoaded();
  snapshotDir = params.snapshotDir;
  const contextId = params.segments.length ? params.segments[params.segments.length - 1].chainHash : "";
  return session.open(params, {
    ...hooksOf(token),
    progress: (doneTokens, totalTokens, tokensPerSecond) =>
      void connection.sendNotification(contextProgress, { contextId, doneTokens, totalTokens, tokensPerSecond }),
  });
});

connection.onRequest(chatAsk, (params, token) => {
  const { session } = requireLoaded();
  return session.ask(params, {
    ...hooksOf(token),
    token: (text) => void connection.sendNotification(chatToken, { requestId: params.requestId, text }),
  });
});

connection.onRequest(contextSave, () => {
  throw new ResponseError(
    EngineErrorCodes.unsupported,
    "This engine cannot write context snapshots yet (they arrive with its .hckv format); the context is kept in memory only.",
  );
});

connection.onRequest(engineStats, () => stats());

connection.onRequest(engineShutdown, () => {
  log("shutdown requested");
  // Answer first, then exit once the answer is written.
  setImmediate(() => exit(0));
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
