// Edits: watches the indexed workspace folder and, once changes settle (debounced), runs the index again.
// The indexer decides what is part of the context (.gitignore, .repollamaignore, excludes, binaries, size);
// paths under excluded globs (files.exclude, search.exclude, repoLlama.index.exclude: .git, node_modules…)
// are dropped here already, so that a build or a git command does not re-index the workspace over and over.
import * as vscode from "vscode";
import { affectsIndex, indexOptionsFor } from "../config";
import { GlobSet } from "../workspace/glob";
import type { WorkspaceIndex } from "./reindex";

/** Quiet time after the last change before the index runs: a save-all or a branch switch is one change. */
export const WATCH_DEBOUNCE_MS = 1000;

export class WorkspaceWatcher implements vscode.Disposable {
  private watcher?: vscode.FileSystemWatcher;
  private folder?: vscode.WorkspaceFolder;
  private excluded = new GlobSet([]);
  private timer?: NodeJS.Timeout;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly index: WorkspaceIndex,
    private readonly debounceMs = WATCH_DEBOUNCE_MS,
  ) {
    this.follow();
    this.subscriptions.push(
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.follow()),
      vscode.workspace.onDidChangeConfiguration((event) => {
        if (affectsIndex(event)) this.follow();
      }),
    );
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.watcher?.dispose();
    for (const s of this.subscriptions) s.dispose();
  }

  /** Watches the first workspace folder (the one the index covers) with the current exclude settings. */
  private follow(): void {
    this.watcher?.dispose();
    this.watcher = undefined;
    this.folder = vscode.workspace.workspaceFolders?.[0];
    if (!this.folder) return;
    this.excluded = new GlobSet(indexOptionsFor(this.folder).exclude);
    this.watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(this.folder, "**/*"));
    const changed = (uri: vscode.Uri) => this.changed(uri);
    this.watcher.onDidCreate(changed);
    this.watcher.onDidChange(changed);
    this.watcher.onDidDelete(changed);
  }

  private changed(uri: vscode.Uri): void {
    if (!this.folder) return;
    const relative = vscode.workspace.asRelativePath(uri, false);
    if (relative === uri.fsPath || this.isExcluded(relative)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.index.start(), this.debounceMs);
  }

  /** True when the path or a folder above it matches an exclude glob ("**\/node_modules" names the folder). */
  private isExcluded(relative: string): boolean {
    const parts = relative.split("/");
    for (let i = 1; i <= parts.length; i++) {
      if (this.excluded.matches(parts.slice(0, i).join("/"))) return true;
    }
    return false;
  }
}
