// The messages between the extension and the chat webview, and the user-facing texts that both the
// webview and the extension's notifications show. Imported by src/chat/view.ts and media/chat.ts, so it
// stays browser-safe: types, constants and pure functions only.
import { CommandIds } from "../commands/ids";
import type { IndexStats } from "../workspace/types";

/** The workspace index as the view shows it. */
export type IndexState =
  | { kind: "noFolder" }
  | { kind: "indexing"; folder: string }
  | { kind: "ready"; folder: string; stats: IndexStats }
  | { kind: "cancelled"; folder: string }
  | { kind: "failed"; folder: string; message: string };

/** What repoLlama.modelPath points at, checked on this machine. */
export type ModelState =
  | { kind: "none" }
  | { kind: "unusable"; path: string; problem: string }
  | { kind: "configured"; path: string; bytes: number; ggufVersion: number };

export interface ViewState {
  index: IndexState;
  model: ModelState;
}

/** Extension → webview. */
export type ToWebview =
  | { type: "state"; state: ViewState }
  /** A short markdown note for the answer area (rendered with raw HTML disabled). */
  | { type: "notice"; markdown: string };

/** Commands the webview's buttons may run; the extension rejects anything else. */
export const viewCommands = [CommandIds.selectModel, CommandIds.downloadModel, CommandIds.reindex] as const;
export type ViewCommand = (typeof viewCommands)[number];

/** Webview → extension. */
export type FromWebview = { type: "ready" } | { type: "run"; command: ViewCommand };

export const SELECT_MODEL = "Select Model";
export const DOWNLOAD_MODEL = "Download Model";

export const NO_MODEL_MESSAGE =
  "No model is configured. Repo Llama answers with a local Llama-3 model in GGUF format: select a .gguf file on this machine or download one.";

export const ENGINE_MISSING_MESSAGE =
  "This build of Repo Llama has no engine to run the model yet, so questions and Explain Repository are not available.";

/** The actionable text for a missing or unusable model, or undefined when a model file is configured. */
export function modelProblemMessage(model: ModelState): string | undefined {
  switch (model.kind) {
    case "none":
      return NO_MODEL_MESSAGE;
    case "unusable":
      return `The model in repoLlama.modelPath cannot be used: ${model.problem} Select another model or download one.`;
    case "configured":
      return undefined;
  }
}

/** Why the chat input is disabled; undefined once questions can be asked. */
export function chatDisabledHint(model: ModelState): string | undefined {
  return model.kind === "configured" ? ENGINE_MISSING_MESSAGE : "Select a model to ask questions about this workspace.";
}

export function isViewCommand(value: unknown): value is ViewCommand {
  return (viewCommands as readonly unknown[]).includes(value);
}
