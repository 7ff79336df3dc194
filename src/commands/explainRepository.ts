// "Explain Repository": with a model, streams a markdown overview of the workspace into a new untitled
// markdown editor (progress notification with Cancel); without one, says what is missing with the same
// text and buttons as the chat view.
import * as vscode from "vscode";
import type { ChatController } from "../chat/controller";
import { DOWNLOAD_MODEL, modelProblemMessage, SELECT_MODEL } from "../chat/messages";
import type { ModelSetting } from "../model/modelSetting";
import { CommandIds } from "./ids";

export type ExplainOutcome =
  | { kind: "noModel"; message: string }
  | { kind: "explained"; uri: string; text: string; stopped: boolean }
  | { kind: "failed"; message: string };

export const EXPLAIN_PROMPT = [
  "Write an overview of this repository in markdown for a developer who is new to it, with these sections:",
  "1. **Purpose**: what the project does and for whom.",
  "2. **Architecture**: the main parts and how data flows between them.",
  "3. **Main modules**: the important files and folders, each with a path:line citation.",
  "4. **Entry points**: where execution starts (commands, main functions, exported APIs), with citations.",
  "5. **Build and test**: the commands to build, run and test it, as the repository defines them.",
  "Cite files as path:line. Say so when the repository does not show something instead of guessing.",
].join("\n");

/** Appends reach the editor at most this often, so a fast model does not flood it with edits. */
const FLUSH_MS = 100;

let chat: ChatController | undefined;

/** Called by the composition root: the command answers through the chat's engine path. */
export function useChatForExplain(controller: ChatController): vscode.Disposable {
  chat = controller;
  return new vscode.Disposable(() => {
    if (chat === controller) chat = undefined;
  });
}

/** Resolves when the overview is written (or when the no-model message is shown), with what happened. */
export async function explainRepository(model: ModelSetting): Promise<ExplainOutcome> {
  const problem = modelProblemMessage(await model.refresh());
  if (problem) {
    void vscode.window.showWarningMessage(problem, SELECT_MODEL, DOWNLOAD_MODEL).then((choice) => {
      if (choice === SELECT_MODEL) void vscode.commands.executeCommand(CommandIds.selectModel);
      if (choice === DOWNLOAD_MODEL) void vscode.commands.executeCommand(CommandIds.downloadModel);
    });
    return { kind: "noModel", message: problem };
  }
  // activate() connects the controller before it registers the commands.
  if (!chat) throw new Error("Explain Repository ran before the extension finished starting; run it again.");
  return writeOverview(chat);
}

async function writeOverview(controller: ChatController): Promise<ExplainOutcome> {
  const document = await vscode.workspace.openTextDocument({ language: "markdown", content: "" });
  await vscode.window.showTextDocument(document, { preview: false });
  const writer = new DocumentAppender(document);
  try {
    const outcome = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Repo Llama: explaining the repository", cancellable: true },
      (progress, token) => {
        let tokens = 0;
        return controller.complete(
          [{ role: "user", content: EXPLAIN_PROMPT }],
          (text) => {
            writer.append(text);
            if (++tokens % 20 === 0) progress.report({ message: `${tokens} tokens written` });
          },
          token,
        );
      },
    );
    await writer.close();
    const stopped = outcome.stopReason === "cancelled";
    if (stopped) void vscode.window.showInformationMessage("Explain Repository was stopped; the overview so far is in the editor.");
    return { kind: "explained", uri: document.uri.toString(), text: document.getText(), stopped };
  } catch (error) {
    await writer.close();
    const message = error instanceof Error ? error.message : String(error);
    void vscode.window.showErrorMessage(`Repo Llama could not explain the repository: ${message}`, "Show Engine Log").then((choice) => {
      if (choice) void vscode.commands.executeCommand(CommandIds.showLog);
    });
    return { kind: "failed", message };
  }
}

/** Appends streamed text at the end of a document, batched and in order. */
class DocumentAppender {
  private pending = "";
  private timer?: NodeJS.Timeout;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly document: vscode.TextDocument) {}

  append(text: string): void {
    this.pending += text;
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  async close(): Promise<void> {
    this.flush();
    await this.writing;
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return;
    const text = this.pending;
    this.pending = "";
    this.writing = this.writing.then(() => {
      const edit = new vscode.WorkspaceEdit();
      edit.insert(this.document.uri, this.document.positionAt(this.document.getText().length), text);
      return vscode.workspace.applyEdit(edit);
    });
  }
}
