// The extension's end of the sidecar protocol: starts dist/sidecar.js as a Node child process, speaks
// JSON-RPC over its stdio, reports health, forwards the sidecar's stderr as log lines, and restarts it
// with exponential backoff after a crash. No vscode import: the extension adapts it to the status bar and
// the output channel, and tests drive it with plain Node.
//
// Two lifetimes: the client's (start → stop) and one sidecar run's (spawn → exit). Everything tied to a
// run (connection, pending requests, listeners on its streams) ends with that run.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import {
  type CancellationToken,
  createMessageConnection,
  ErrorCodes,
  type MessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-jsonrpc/node";
import type { EngineHealth } from "../status";
import {
  type AskParams,
  type AskResult,
  chatAsk,
  chatToken,
  contextOpen,
  contextProgress,
  engineLoad,
  engineShutdown,
  engineStats,
  type LoadParams,
  type LoadResult,
  type ModelSummary,
  modelInspect,
  type OpenParams,
  type OpenResult,
  type ProgressParams,
  type StatsResult,
} from "./protocol";

export interface RestartPolicy {
  /** Wait before the first restart; doubled after each further crash. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** This many crashes within windowMs and the client stops restarting. */
  maxCrashes: number;
  windowMs: number;
}

export const defaultRestartPolicy: RestartPolicy = { firstDelayMs: 500, maxDelayMs: 8000, maxCrashes: 5, windowMs: 60_000 };

/** How a sidecar process is started. */
export interface SidecarLaunch {
  /** dist/sidecar.js. */
  sidecarPath: string;
  /** The Node binary; process.execPath by default (VS Code's own, which runs as Node with ELECTRON_RUN_AS_NODE). */
  execPath?: string;
  /** Set when execPath is an Electron binary (desktop VS Code), so that it runs as plain Node. */
  electron?: boolean;
  /** Extra environment for the sidecar. */
  env?: Record<string, string>;
}

export interface EngineClientOptions extends SidecarLaunch {
  restart?: Partial<RestartPolicy>;
  /** One line of the sidecar's stderr, or a line about its lifecycle. */
  log(line: string): void;
  onHealth(health: EngineHealth, detail: string): void;
  /** After a restart has loaded the model again: the context must be opened again. */
  onRestarted?(load: LoadResult): void;
}

/** A request failed because the sidecar ended under it. */
export class EngineStoppedError extends Error {}

interface Run {
  child: ChildProcess;
  connection: MessageConnection;
  exited: Promise<void>;
}

export class EngineClient {
  private run?: Run;
  private loadParams?: LoadParams;
  private loadResult?: LoadResult;
  /** The engine/load in progress (first start or a restart), which requests wait for. */
  private launching?: Promise<LoadResult>;
  private stopping = false;
  private crashes: number[] = [];
  private restartTimer?: NodeJS.Timeout;
  private inFlight = 0;
  private healthValue: EngineHealth = "stopped";
  private lastExit = "";
  private readonly tokenListeners = new Map<string, (text: string) => void>();
  private readonly progressListeners = new Set<(p: ProgressParams) => void>();
  private askCounter = 0;
  private readonly policy: RestartPolicy;

  constructor(private readonly options: EngineClientOptions) {
    this.policy = { ...defaultRestartPolicy, ...options.restart };
  }

  get health(): EngineHealth {
    return this.healthValue;
  }

  /** The sidecar's process id while one runs. */
  get pid(): number | undefined {
    return this.run?.child.pid;
  }

  /** The latest successful engine/load answer. */
  get model(): LoadResult | undefined {
    return this.loadResult;
  }

  /** Starts the sidecar (or reuses the running one) and loads the model; restarts will load it again. */
  async start(params: LoadParams): Promise<LoadResult> {
    this.stopping = false;
    this.crashes = [];
    clearTimeout(this.restartTimer);
    this.loadParams = params;
    return this.launch();
  }

  /** Asks the sidecar to exit, and kills it when it does not within timeoutMs. */
  async stop(timeoutMs = 3000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const run = this.run;
    if (!run) {
      this.setHealth("stopped", "The engine is not running.");
      return;
    }
    const killer = setTimeout(() => run.child.kill("SIGKILL"), timeoutMs);
    try {
      await Promise.race([run.connection.sendRequest(engineShutdown), run.exited]);
    } catch {
      // It exited before answering: that is what was asked for.
    }
    await run.exited;
    clearTimeout(killer);
    this.setHealth("stopped", "The engine was stopped.");
  }

  openContext(params: OpenParams, onProgress?: (p: ProgressParams) => void, token?: CancellationToken): Promise<OpenResult> {
    return this.request(async (connection) => {
      if (onProgress) this.progressListeners.add(onProgress);
      try {
        return await connection.sendRequest(contextOpen, params, token);
      } finally {
        if (onProgress) this.progressListeners.delete(onProgress);
      }
    });
  }

  ask(params: Omit<AskParams, "requestId">, onToken: (text: string) => void, token?: CancellationToken): Promise<AskResult> {
    const requestId = `ask-${++this.askCounter}`;
    return this.request(async (connection) => {
      this.tokenListeners.set(requestId, onToken);
      try {
        return await connection.sendRequest(chatAsk, { ...params, requestId }, token);
      } finally {
        this.tokenListeners.delete(requestId);
      }
    });
  }

  stats(): Promise<StatsResult> {
    return this.request((connection) => connection.sendRequest(engineStats), false);
  }

  private async request<T>(send: (connection: MessageConnection) => Promise<T>, busy = true): Promise<T> {
    // A request made while the model loads waits for it instead of failing.
    if (this.launching) await this.launching.catch(() => undefined);
    const run = this.run;
    if (!run || !this.loadResult) {
      throw new EngineStoppedError(`The engine is not running (${this.healthValue}). ${this.lastExit}`.trim());
    }
    if (busy && this.inFlight++ === 0) this.setHealth("busy", "The engine is working.");
    try {
      return await send(run.connection);
    } catch (error) {
      if (error instanceof ResponseError && error.code === ErrorCodes.PendingResponseRejected) {
        throw new EngineStoppedError(`The engine stopped while working on the request: ${this.lastExit}`);
      }
      throw error;
    } finally {
      if (busy && --this.inFlight === 0 && this.run === run && this.healthValue === "busy") {
        this.setHealth("ok", this.readyDetail());
      }
    }
  }

  private launch(): Promise<LoadResult> {
    const launching = this.load();
    this.launching = launching;
    const settle = () => {
      if (this.launching === launching) this.launching = undefined;
    };
    launching.then(settle, settle);
    return launching;
  }

  private async load(): Promise<LoadResult> {
    const params = this.loadParams;
    if (!params) throw new Error("EngineClient.load before start");
    if (!this.run) this.run = this.spawnSidecar();
    const run = this.run;
    this.setHealth("starting", `Loading ${params.modelPath}…`);
    try {
      this.loadResult = await run.connection.sendRequest(engineLoad, params);
    } catch (error) {
      this.loadResult = undefined;
      const crashed = error instanceof ResponseError && error.code === ErrorCodes.PendingResponseRejected;
      const message = crashed ? `The engine stopped while loading the model: ${this.lastExit}` : (error as Error).message;
      // A crash sets its own health and restarts; a refusal (bad model, no memory) is final until the settings change.
      if (this.run === run) this.setHealth("error", message);
      // Refusals keep their ResponseError code (EngineErrorCodes) for callers that tell them apart.
      throw crashed ? new EngineStoppedError(message) : error;
    }
    this.setHealth(this.inFlight > 0 ? "busy" : "ok", this.readyDetail());
    return this.loadResult;
  }

  private readyDetail(): string {
    const r = this.loadResult;
    if (!r) return "The engine is running.";
    const note = r.deviceNote ? ` ${r.deviceNote}` : "";
    return `${r.model.name} (${r.model.quantization}), context ${r.contextTokens.toLocaleString("en-US")} tokens, ${r.device}, ${r.threads} threads.${note}`;
  }

  private spawnSidecar(): Run {
    const { child, connection } = spawnConnected(this.options);
    connection.onNotification(chatToken, ({ requestId, text }) => this.tokenListeners.get(requestId)?.(text));
    connection.onNotification(contextProgress, (p) => {
      for (const listener of this.progressListeners) listener(p);
    });
    // Without this, a write to a sidecar that just died throws EPIPE out of the stream.
    child.stdin?.on("error", (error) => this.options.log(`engine stdin: ${error.message}`));
    createInterface({ input: child.stderr as NonNullable<typeof child.stderr> }).on("line", (line) => this.options.log(line));
    connection.listen();
    this.options.log(`started the engine sidecar (pid ${child.pid})`);

    const exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (description: string) => {
        if (done) return;
        done = true;
        this.lastExit = description;
        connection.dispose();
        resolve();
        this.onExit(run, description);
      };
      child.on("exit", (code, signal) => finish(signal ? `it was ended by ${signal}` : `it exited with code ${code}`));
      child.on("error", (error) => finish(`it could not be started: ${error.message}`));
    });
    const run: Run = { child, connection, exited };
    return run;
  }

  private onExit(run: Run, description: string): void {
    if (this.run !== run) return;
    this.run = undefined;
    this.inFlight = 0;
    this.options.log(`the engine sidecar ended: ${description}`);
    if (this.stopping) return;

    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < this.policy.windowMs), now];
    if (this.crashes.length >= this.policy.maxCrashes) {
      const minutes = Math.round(this.policy.windowMs / 60_000);
      this.setHealth(
        "error",
        `The engine crashed ${this.crashes.length} times within ${minutes === 1 ? "a minute" : `${minutes} minutes`} (last: ${description}) and is not restarted. ` +
          "Check the engine log, try another model or a smaller repoLlama.contextBudgetTokens, then run Select Model to start it again.",
      );
      return;
    }
    const delay = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** (this.crashes.length - 1));
    this.setHealth("error", `The engine stopped unexpectedly (${description}); restarting in ${(delay / 1000).toFixed(1)} s.`);
    this.restartTimer = setTimeout(() => {
      this.launch().then(
        (result) => this.options.onRestarted?.(result),
        (error: Error) => this.options.log(`restart failed: ${error.message}`),
      );
    }, delay);
  }

  private setHealth(health: EngineHealth, detail: string): void {
    this.healthValue = health;
    this.options.onHealth(health, detail);
  }
}

function spawnConnected(launch: SidecarLaunch): { child: ChildProcess; connection: MessageConnection } {
  const env: Record<string, string | undefined> = { ...process.env, ...launch.env };
  if (launch.electron) env.ELECTRON_RUN_AS_NODE = "1";
  const child = spawn(launch.execPath ?? process.execPath, [launch.sidecarPath], {
    stdio: ["pipe", "pipe", "pipe"],
    env,
    windowsHide: true,
  });
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout as NonNullable<typeof child.stdout>),
    new StreamMessageWriter(child.stdin as NonNullable<typeof child.stdin>),
  );
  return { child, connection };
}

/**
 * Validates a model file with the engine (model/inspect) in a sidecar of its own, so that the running
 * engine keeps its model and context while the user is still choosing. Rejects with the engine's
 * ResponseError (EngineErrorCodes.badModel and a readable message) for a file it cannot use.
 */
export async function inspectModel(launch: SidecarLaunch, modelPath: string, timeoutMs = 120_000): Promise<ModelSummary> {
  const { child, connection } = spawnConnected(launch);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
  child.stdin?.on("error", () => undefined);
  const exited = new Promise<string>((resolve) => {
    child.on("exit", (code, signal) => resolve(signal ? `it was ended by ${signal}` : `it exited with code ${code}`));
    child.on("error", (error) => resolve(`it could not be started: ${error.message}`));
  });
  connection.listen();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const answer = connection.sendRequest(modelInspect, { modelPath });
    const ended = exited.then((how) => {
      throw new EngineStoppedError(`The engine stopped while checking the model: ${how}. ${stderr.trim().split("\n").pop() ?? ""}`.trim());
    });
    // Only the race reports it: the clean exit after an answer is no failure.
    ended.catch(() => undefined);
    return await Promise.race([answer, ended]);
  } finally {
    clearTimeout(timer);
    await Promise.race([connection.sendRequest(engineShutdown).catch(() => undefined), exited]);
    child.kill("SIGKILL");
    connection.dispose();
  }
}
