// "Select Model": pick a .gguf file (or receive one from the explorer's context menu), check that it is a
// GGUF file, and store it in repoLlama.modelPath for this user. The engine validates it fully when it loads.
import * as path from "node:path";
import * as vscode from "vscode";
import { ENGINE_STARTS_MESSAGE } from "../chat/messages";
import { formatBytes } from "../chat/summary";
import { readConfig, setModelPath } from "../config";
import { checkGgufFile, ModelFileError } from "../model/modelFile";

export type SelectOutcome =
  | { kind: "selected"; path: string; bytes: number; ggufVersion: number }
  | { kind: "rejected"; path: string; problem: string }
  | { kind: "dismissed" };

export async function selectModel(notify: (markdown: string) => void, picked?: vscode.Uri): Promise<SelectOutcome> {
  const uri = picked ?? (await pickModelFile());
  if (!uri) return { kind: "dismissed" };
  if (uri.scheme !== "file") {
    const problem = `${uri.toString()} is not on this machine's file system; the engine can only load local files.`;
    void vscode.window.showErrorMessage(problem);
    return { kind: "rejected", path: uri.toString(), problem };
  }
  const filePath = uri.fsPath;
  try {
    const header = await checkGgufFile(filePath);
    await setModelPath(filePath);
    const facts = `GGUF version ${header.ggufVersion}, ${formatBytes(header.bytes)}`;
    void vscode.window.showInformationMessage(`Model set to ${path.basename(filePath)} (${facts}). ${ENGINE_STARTS_MESSAGE}`);
    notify(`Model set to \`${filePath}\` (${facts}).\n\n${ENGINE_STARTS_MESSAGE}`);
    return { kind: "selected", path: filePath, ...header };
  } catch (error) {
    if (!(error instanceof ModelFileError)) throw error;
    void vscode.window.showErrorMessage(`${error.message} Pick a Llama-3 model file ending in .gguf.`);
    return { kind: "rejected", path: filePath, problem: error.message };
  }
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
