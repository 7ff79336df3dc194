// Registers every contributed command. Each handler returns what it did, so that tests calling
// vscode.commands.executeCommand can assert on it; none of them waits for a notification to be dismissed.
import * as vscode from "vscode";
import type { ModelSetting } from "../model/modelSetting";
import { clearCache } from "./clearCache";
import { downloadModel } from "./downloadModel";
import { explainRepository } from "./explainRepository";
import { type CommandId, CommandIds } from "./ids";
import { reindexWorkspace, type WorkspaceIndex } from "./reindex";
import { type InspectModel, selectModel } from "./selectModel";

export interface CommandDeps {
  index: WorkspaceIndex;
  model: ModelSetting;
  log: vscode.LogOutputChannel;
  globalStorageUri: vscode.Uri;
  /** The engine's validation and summary of a model file (Select Model shows it before it changes the setting). */
  inspectModel: InspectModel;
  /** Shows a markdown note in the chat view's answer area. */
  notify: (markdown: string) => void;
}

export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const handlers: Record<CommandId, (...args: never[]) => unknown> = {
    [CommandIds.explainRepository]: () => explainRepository(deps.model),
    [CommandIds.reindex]: () => reindexWorkspace(deps.index),
    [CommandIds.selectModel]: (uri?: vscode.Uri) => selectModel(deps.inspectModel, deps.notify, uri instanceof vscode.Uri ? uri : undefined),
    [CommandIds.downloadModel]: () => downloadModel(deps.globalStorageUri),
    [CommandIds.clearCache]: () => clearCache(deps.globalStorageUri),
    [CommandIds.showLog]: () => deps.log.show(true),
  };
  return Object.entries(handlers).map(([id, handler]) =>
    vscode.commands.registerCommand(id, (...args: never[]) => reportFailure(deps.log, id, () => handler(...args))),
  );
}

/**
 * Turns an unexpected failure into one readable notification (VS Code's own says only that the command
 * failed) and the details into the log. Expected problems are reported by the handlers themselves.
 */
async function reportFailure(log: vscode.LogOutputChannel, id: string, run: () => unknown): Promise<unknown> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.error(`${id} failed`, error);
    void vscode.window.showErrorMessage(`Repo Llama: ${id} failed: ${message}`, "Show Log").then((choice) => {
      if (choice) log.show();
    });
    return undefined;
  }
}
