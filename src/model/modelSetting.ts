// The model the user configured, as last checked on disk. Re-checked whenever repoLlama.modelPath
// changes and before a command depends on it (the file may have been moved since).
import * as vscode from "vscode";
import type { ModelState } from "../chat/messages";
import { formatBytes } from "../chat/summary";
import { readConfig } from "../config";
import { inspectModelPath } from "./modelFile";

export class ModelSetting implements vscode.Disposable {
  /** Undefined until the first check, so that the first check always reports. */
  private state?: ModelState;
  private readonly changed = new vscode.EventEmitter<ModelState>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  get current(): ModelState {
    return this.state ?? { kind: "none" };
  }

  async refresh(): Promise<ModelState> {
    const next = await inspectModelPath(readConfig().modelPath);
    if (JSON.stringify(next) !== JSON.stringify(this.state)) {
      this.state = next;
      this.log.info(describe(next));
      this.changed.fire(next);
    }
    return next;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

function describe(model: ModelState): string {
  switch (model.kind) {
    case "none":
      return "Model: none configured (repoLlama.modelPath is empty).";
    case "unusable":
      return `Model: ${model.path} cannot be used: ${model.problem}`;
    case "configured":
      return `Model: ${model.path} (GGUF version ${model.ggufVersion}, ${formatBytes(model.bytes)}).`;
  }
}
