// The engine inside VS Code: runs the sidecar through EngineClient while a usable model is configured,
// shows its health in the status item and its stderr in the "Repo Llama Engine" output channel, and
// reloads it when a setting that shapes the engine changes.
import * as vscode from "vscode";
import type { ModelState } from "../chat/messages";
import { readConfig } from "../config";
import { type EngineStatusItem, engineReport, stoppedEngineReport } from "../status";
import { EngineClient, inspectModel, type SidecarLaunch } from "./client";
import type { LoadParams, LoadResult, ModelSummary } from "./protocol";

/** Settings that change what engine/load receives. */
const engineSettings = ["repoLlama.device", "repoLlama.threads", "repoLlama.kv", "repoLlama.contextBudgetTokens"];

export class EngineHost implements vscode.Disposable {
  readonly client: EngineClient;
  private model: ModelState = { kind: "none" };
  private readonly restarted = new vscode.EventEmitter<LoadResult>();
  /** Fires after the sidecar crashed and came back: contexts must be opened again. */
  readonly onDidRestart = this.restarted.event;

  private readonly launch: SidecarLaunch;

  constructor(
    extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: EngineStatusItem,
    /** Where the engine keeps what it reuses across sessions besides contexts (globalStorage). */
    private readonly cacheDir: string,
  ) {
    this.launch = {
      sidecarPath: vscode.Uri.joinPath(extensionUri, "dist", "sidecar.js").fsPath,
      // Desktop VS Code's process.execPath is Electron, which must be told to behave as plain Node.
      electron: Boolean(process.versions.electron),
    };
    this.client = new EngineClient({
      ...this.launch,
      log: (line) => this.log.info(`[engine] ${line}`),
      onHealth: (health, detail) => {
        const problem = this.model.kind !== "configured";
        this.status.show(health === "stopped" && problem ? stoppedEngineReport(this.model) : engineReport(health, detail));
      },
      onRestarted: (result) => this.restarted.fire(result),
    });
  }

  /** Starts, reloads or stops the engine for the model now configured. Resolves when that is done. */
  async follow(model: ModelState): Promise<LoadResult | undefined> {
    this.model = model;
    if (model.kind !== "configured") {
      await this.client.stop();
      return undefined;
    }
    try {
      return await this.client.start(loadParams(model.path, this.cacheDir));
    } catch (error) {
      // The status item shows the reason; the log keeps it.
      this.log.error(`The engine could not load ${model.path}: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** The engine's validation and summary of a model file, from a sidecar of its own (model/inspect). */
  inspect(modelPath: string): Promise<ModelSummary> {
    return inspectModel(this.launch, modelPath);
  }

  affectsEngine(event: vscode.ConfigurationChangeEvent): boolean {
    return engineSettings.some((key) => event.affectsConfiguration(key));
  }

  dispose(): void {
    this.restarted.dispose();
    void this.client.stop();
  }
}

function loadParams(modelPath: string, cacheDir: string): LoadParams {
  const config = readConfig();
  return { modelPath, device: config.device, threads: config.threads, kv: config.kv, contextTokens: config.contextBudgetTokens, cacheDir };
}
