// The model the user configured, as last checked on disk. Re-checked whenever repoLlama.modelPath
// changes and before a command depends on it (the file may have been moved since).
import * as vscode from "vscode";
import type { ModelState } from "../chat/messages";
import { readConfig } from "../config";
import { inspectModelPath } from "./modelFile";

export class ModelSetting implements vscode.Disposable {
  private state: ModelState = { kind: "none" };
  private readonly changed = new vscode.EventEmitter<ModelState>();
  readonly onDidChange = this.changed.event;

  get current(): ModelState {
    return this.state;
  }

  async refresh(): Promise<ModelState> {
    const next = await inspectModelPath(readConfig().modelPath);
    if (JSON.stringify(next) !== JSON.stringify(this.state)) {
      this.state = next;
      this.changed.fire(next);
    }
    return next;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
