// "Clear Cached Context": deletes the saved context snapshots of every workspace (the store's files, the
// engine's .hckv files and temp files of interrupted writes) and reports what it removed.
import * as vscode from "vscode";
import { formatBytes } from "../chat/summary";
import { readConfig, snapshotFolder } from "../config";
import { SnapshotStore } from "../sidecar/snapshots";

export interface ClearOutcome {
  folder: string;
  files: number;
  bytes: number;
}

export async function clearCache(globalStorageUri: vscode.Uri): Promise<ClearOutcome> {
  const folder = snapshotFolder(globalStorageUri).fsPath;
  const { files, bytes } = await new SnapshotStore(folder, readConfig().cacheMaxDiskGB * 2 ** 30).clear();
  if (files === 0) {
    void vscode.window.showInformationMessage(`There is no cached context to clear (${folder} holds no snapshots).`);
  } else {
    void vscode.window.showInformationMessage(
      `Cleared the cached context: removed ${files} ${files === 1 ? "file" : "files"} (${formatBytes(bytes)}) from ${folder}.`,
    );
  }
  return { folder, files, bytes };
}
