// "Clear Cached Context": deletes the saved context snapshots of every workspace and reports what it removed.
import * as vscode from "vscode";
import { formatBytes } from "../chat/summary";
import { snapshotFolder } from "../config";

export interface ClearOutcome {
  folder: string;
  files: number;
  bytes: number;
}

export async function clearCache(globalStorageUri: vscode.Uri): Promise<ClearOutcome> {
  const folder = snapshotFolder(globalStorageUri);
  const where = folder.scheme === "file" ? folder.fsPath : folder.toString();
  let usage: { files: number; bytes: number };
  try {
    usage = await measure(folder);
  } catch (error) {
    if (error instanceof vscode.FileSystemError && error.code === "FileNotFound") {
      void vscode.window.showInformationMessage(`There is no cached context to clear (${where} does not exist).`);
      return { folder: where, files: 0, bytes: 0 };
    }
    throw error;
  }
  await vscode.workspace.fs.delete(folder, { recursive: true, useTrash: false });
  void vscode.window.showInformationMessage(
    `Cleared the cached context: removed ${usage.files} ${usage.files === 1 ? "file" : "files"} (${formatBytes(usage.bytes)}) from ${where}.`,
  );
  return { folder: where, ...usage };
}

async function measure(folder: vscode.Uri): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const [name, type] of await vscode.workspace.fs.readDirectory(folder)) {
    const child = vscode.Uri.joinPath(folder, name);
    if (type & vscode.FileType.Directory && !(type & vscode.FileType.SymbolicLink)) {
      const inner = await measure(child);
      files += inner.files;
      bytes += inner.bytes;
    } else {
      files++;
      bytes += (await vscode.workspace.fs.stat(child)).size;
    }
  }
  return { files, bytes };
}
