// "Clear Cached Context": deletes the saved context snapshots of every workspace (the store's files, temp
// files of interrupted writes, and the engine's own .hckv files) and reports what it removed.
import { readdir, rm, stat } from "node:fs/promises";
import * as path from "node:path";
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
  const store = new SnapshotStore(folder, readConfig().cacheMaxDiskGB * 2 ** 30);
  const inStore = await store.clear();
  const engineFiles = await clearEngineSnapshots(folder);
  const files = inStore.files + engineFiles.files;
  const bytes = inStore.bytes + engineFiles.bytes;
  if (files === 0) {
    void vscode.window.showInformationMessage(`There is no cached context to clear (${folder} holds no snapshots).`);
  } else {
    void vscode.window.showInformationMessage(
      `Cleared the cached context: removed ${files} ${files === 1 ? "file" : "files"} (${formatBytes(bytes)}) from ${folder}.`,
    );
  }
  return { folder, files, bytes };
}

/** The engine writes and checks its .hckv files itself, outside the store's envelope, so they are removed here. */
async function clearEngineSnapshots(folder: string): Promise<{ files: number; bytes: number }> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { files: 0, bytes: 0 };
    throw error;
  }
  let files = 0;
  let bytes = 0;
  for (const name of names.filter((n) => n.endsWith(".hckv"))) {
    const file = path.join(folder, name);
    try {
      bytes += (await stat(file)).size;
      await rm(file, { force: true });
      files++;
    } catch {
      // Already gone (another window cleared it).
    }
  }
  return { files, bytes };
}
