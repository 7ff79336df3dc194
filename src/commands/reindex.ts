// The workspace index behind the view's summary and the "Reindex Workspace" command: one run at a time
// (a new run cancels the previous one), a progress notification with Cancel when a run is slow, and the
// latest result kept for whoever needs the segments.
import * as vscode from "vscode";
import type { IndexState } from "../chat/messages";
import { formatIndexTotals, formatSkipped } from "../chat/summary";
import { indexOptionsFor } from "../config";
import { indexWorkspace } from "../workspace/index";
import type { IndexResult, IndexStats } from "../workspace/types";
import { CommandIds } from "./ids";

/** Small workspaces index in well under this; only slower runs get a notification. */
const PROGRESS_DELAY_MS = 1000;

interface Run {
  folder: vscode.WorkspaceFolder;
  cancelled: boolean;
  result: Promise<IndexResult>;
  /** Settles with the state the run ended in; never rejects. */
  outcome: Promise<IndexState>;
}

export class WorkspaceIndex implements vscode.Disposable {
  private run?: Run;
  private stateValue: IndexState = { kind: "noFolder" };
  private readonly changed = new vscode.EventEmitter<IndexState>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly log: vscode.LogOutputChannel) {}

  get state(): IndexState {
    return this.stateValue;
  }

  /** Indexes the first workspace folder, cancelling a run in progress. Resolves with the state it ended in. */
  start(): Promise<IndexState> {
    if (this.run) this.run.cancelled = true;
    const folders = vscode.workspace.workspaceFolders ?? [];
    const folder = folders[0];
    if (!folder) {
      this.run = undefined;
      this.setState({ kind: "noFolder" });
      return Promise.resolve(this.stateValue);
    }
    if (folders.length > 1) {
      this.log.warn(`The workspace has ${folders.length} folders; only the first, ${folder.name}, is indexed.`);
    }
    const run = { folder, cancelled: false } as Run;
    const options = { ...indexOptionsFor(folder), isCancelled: () => run.cancelled };
    // Through a promise so that a synchronous throw from the indexer is reported like any other failure.
    run.result = Promise.resolve().then(() => indexWorkspace(folder.uri.fsPath, options));
    run.outcome = this.follow(run);
    this.run = run;
    this.setState({ kind: "indexing", folder: folder.name });
    const timer = setTimeout(() => this.showProgress(run), PROGRESS_DELAY_MS);
    void run.outcome.finally(() => clearTimeout(timer));
    return run.outcome;
  }

  /** The latest index, waiting for the run in progress; rejects when that run failed or was cancelled. */
  async result(): Promise<IndexResult> {
    for (;;) {
      const run = this.run;
      if (!run) throw new Error("No workspace folder is open, so there is no index. Open a folder first.");
      try {
        const result = await run.result;
        if (run === this.run) return result;
      } catch (error) {
        if (run === this.run) throw error;
      }
      // A newer run replaced this one while we waited: wait for that one instead.
    }
  }

  async summary(): Promise<IndexStats> {
    return (await this.result()).stats;
  }

  dispose(): void {
    if (this.run) this.run.cancelled = true;
    this.changed.dispose();
  }

  private async follow(run: Run): Promise<IndexState> {
    const folder = run.folder.name;
    let state: IndexState;
    try {
      const { stats } = await run.result;
      state = { kind: "ready", folder, stats };
      this.log.info(`Indexed ${folder}: ${formatIndexTotals(stats)}. ${formatSkipped(stats.skipped)}. ${stats.ms} ms.`);
    } catch (error) {
      if (run.cancelled) {
        state = { kind: "cancelled", folder };
        this.log.info(`Indexing ${folder} was cancelled.`);
      } else {
        const message = error instanceof Error ? error.message : String(error);
        state = { kind: "failed", folder, message };
        this.log.error(`Indexing ${folder} failed`, error);
        if (run === this.run) {
          void vscode.window
            .showErrorMessage(`Repo Llama could not index ${folder}: ${message}`, "Show Log", "Retry")
            .then((choice) => {
              if (choice === "Show Log") this.log.show();
              if (choice === "Retry") void vscode.commands.executeCommand(CommandIds.reindex);
            });
        }
      }
    }
    if (run === this.run) {
      this.setState(state);
      return state;
    }
    // A newer run replaced this one: whoever waits on this run wants to know how the newest one ends.
    return this.run ? this.run.outcome : this.stateValue;
  }

  private showProgress(run: Run): void {
    if (run !== this.run) return;
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Repo Llama: indexing ${run.folder.name}…`, cancellable: true },
      async (_progress, token) => {
        const subscription = token.onCancellationRequested(() => {
          run.cancelled = true;
        });
        // This run's own end, not `outcome`: a newer run shows its own notification, with its own Cancel.
        await run.result.catch(() => undefined);
        subscription.dispose();
      },
    );
  }

  private setState(state: IndexState): void {
    this.stateValue = state;
    this.changed.fire(state);
  }
}

/** "Reindex Workspace": runs a new index and says how it ended. Resolves with that state (tests read it). */
export async function reindexWorkspace(index: WorkspaceIndex): Promise<IndexState> {
  const state = await index.start();
  switch (state.kind) {
    case "ready":
      vscode.window.setStatusBarMessage(`Repo Llama: ${state.folder} indexed, ${formatIndexTotals(state.stats)}`, 5000);
      break;
    case "cancelled":
      void vscode.window.showInformationMessage(`Indexing ${state.folder} was cancelled. Run Reindex Workspace to index it again.`);
      break;
    case "noFolder":
      void vscode.window.showWarningMessage("Open a folder to index it: Repo Llama works on the first workspace folder.");
      break;
    case "failed":
    case "indexing":
      // The index reports its own failures; "indexing" cannot be an end state.
      break;
  }
  return state;
}
