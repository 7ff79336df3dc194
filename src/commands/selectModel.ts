// "Select Model": pick a .gguf file (or receive one from the explorer's context menu), have the engine
// validate it (model/inspect: GGUF structure, architecture, tensors, tokenizer) and show what it is, then
// store it in repoLlama.modelPath for this user. A file the engine cannot use leaves the setting as it was.
import * as path from "node:path";
import * as vscode from "vscode";
import { ENGINE_STARTS_MESSAGE } from "../chat/messages";
import { formatBytes } from "../chat/summary";
import { readConfig, setModelPath } from "../config";
import type { ModelSummary } from "../engine/protocol";

export type SelectOutcome =
  | { kind: "selected"; path: string; model: ModelSummary; summary: string }
  | { kind: "rejected"; path: string; problem: string }
  | { kind: "dismissed" };

/** The engine's validation of a model file; rejects with a readable message for a file it cannot use. */
export type InspectModel = (modelPath: string) => Promise<ModelSummary>;

export async function selectModel(inspect: InspectModel, notify: (markdown: string) => void, picked?: vscode.Uri): Promise<SelectOutcome> {
  const uri = picked ?? (await pickModelFile());
  if (!uri) return { kind: "dismissed" };
  if (uri.scheme !== "file") {
    const problem = `${uri.toString()} is not on this machine's file system; the engine can only load local files.`;
    void vscode.window.showErrorMessage(problem);
    return { kind: "rejected", path: uri.toString(), problem };
  }
  const filePath = uri.fsPath;
  const fileName = path.basename(filePath);
  let model: ModelSummary;
  try {
    model = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Repo Llama: checking ${fileName}…` },
      () => inspect(filePath),
    );
  } catch (error) {
    const problem = error instanceof Error ? error.message : String(error);
    const previous = readConfig().modelPath;
    const kept = previous ? `The model setting still points at ${path.basename(previous)}.` : "No model was set.";
    void vscode.window.showErrorMessage(`${problem} ${kept} Pick a Llama-3 model file in GGUF format.`);
    return { kind: "rejected", path: filePath, problem };
  }
  await setModelPath(filePath);
  const summary = describeModel(model);
  void vscode.window.showInformationMessage(`Model set to ${fileName}: ${summary}. ${ENGINE_STARTS_MESSAGE}`);
  notify(`Model set to \`${filePath}\`: ${summary}.\n\n${ENGINE_STARTS_MESSAGE}`);
  return { kind: "selected", path: filePath, model, summary };
}

/** "Llama 3.2 1B Instruct, 1.24B parameters, Q8_0, context 131,072 tokens, 1.2 GB" */
export function describeModel(model: ModelSummary): string {
  return (
    `${model.name}, ${formatParameters(model.parameters)} parameters, ${model.quantization}, ` +
    `context ${model.nCtxTrain.toLocaleString("en-US")} tokens, ${formatBytes(model.fileBytes)}`
  );
}

/** 1_235_814_400 → "1.24B", 8_030_261_248 → "8.03B", 260_000 → "260K". */
export function formatParameters(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(2)}B`;
  if (count >= 1e6) return `${(count / 1e6).toFixed(1)}M`;
  if (count >= 1e3) return `${Math.round(count / 1e3)}K`;
  return String(count);
}

async function pickModelFile(): Promise<vscode.Uri | undefined> {
  const current = readConfig().modelPath;
  const picked = await vscode.window.showOpenDialog({
    title: "Select a Llama-3 model (GGUF)",
    openLabel: "Use Model",
    canSelectMany: false,
    canSelectFolders: false,
    filters: { "GGUF models": ["gguf"], "All files": ["*"] },
    defaultUri: current ? vscode.Uri.file(path.dirname(current)) : undefined,
  });
  return picked?.[0];
}
