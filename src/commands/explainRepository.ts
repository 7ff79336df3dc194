// "Explain Repository". Until the engine exists it can only tell the user what is missing; the message is
// the same text the chat view shows, with the same buttons.
import * as vscode from "vscode";
import { DOWNLOAD_MODEL, ENGINE_MISSING_MESSAGE, modelProblemMessage, SELECT_MODEL } from "../chat/messages";
import type { ModelSetting } from "../model/modelSetting";
import { CommandIds } from "./ids";

export type ExplainOutcome = { kind: "noModel"; message: string } | { kind: "noEngine"; message: string };

/** Resolves as soon as the message is shown (not when it is dismissed), with what was said. */
export async function explainRepository(model: ModelSetting): Promise<ExplainOutcome> {
  const problem = modelProblemMessage(await model.refresh());
  if (problem) {
    void vscode.window.showWarningMessage(problem, SELECT_MODEL, DOWNLOAD_MODEL).then((choice) => {
      if (choice === SELECT_MODEL) void vscode.commands.executeCommand(CommandIds.selectModel);
      if (choice === DOWNLOAD_MODEL) void vscode.commands.executeCommand(CommandIds.downloadModel);
    });
    return { kind: "noModel", message: problem };
  }
  void vscode.window.showInformationMessage(ENGINE_MISSING_MESSAGE, "Show Engine Log").then((choice) => {
    if (choice) void vscode.commands.executeCommand(CommandIds.showLog);
  });
  return { kind: "noEngine", message: ENGINE_MISSING_MESSAGE };
}
