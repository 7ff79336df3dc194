// The chat behind the sidebar view and Explain Repository: opens the repository context in the engine
// (progress notification with Cancel, mirrored in the view), asks with the conversation so far, streams
// the answer, stops it on request, and keeps the conversation per workspace (workspaceState).
//
// One question at a time: the engine computes one thing at a time anyway, and a second question while an
// answer streams would only queue behind it with no way to show that.
//
// After an edit (the index changed while a context is open) the context is brought up to date in the
// background: the engine keeps the prefix before the first changed segment and prefills only the rest, with
// the same progress notification and Cancel. A question asked meanwhile waits for it, showing its progress.
import * as vscode from "vscode";
import { CancellationTokenSource as RpcCancellationSource } from "vscode-jsonrpc";
import type { WorkspaceIndex } from "../commands/reindex";
import { EngineStoppedError } from "../engine/client";
import { type AskResult, type AskStats, type ChatMessage, EngineErrorCodes, type OpenResult, type ProgressParams } from "../engine/protocol";
import type { EngineHost } from "../engine/engineHost";
import type { ModelSetting } from "../model/modelSetting";
import { readConfig } from "../config";
import { knownCitedPaths } from "./citations";
import { changedFiles, type ChatEntry, type ContextInfo, formatContextSource, formatDiskLoad, formatPrefillProgress, modelProblemMessage, type PrefillProgress, type ToWebview } from "./messages";

const HISTORY_KEY = "repoLlama.chat.history";
/** Entries kept in workspaceState; older ones are dropped first. */
const MAX_HISTORY = 50;
/** Earlier turns sent with a question: enough for follow-ups without crowding the context. */
const MAX_TURNS_SENT = 6;
const MAX_ANSWER_TOKENS = 2048;

/** What a caller hears while an answer streams. */
export interface AnswerSink {
  token(text: string): void;
}

export interface AnswerOutcome {
  text: string;
  stopReason: AskResult["stopReason"];
  /** The engine's figures for the answer; absent when it was stopped before the engine answered. */
  stats?: AskStats;
}

/** The chat view's side of the controller: what it must be told. */
export interface ChatViewPort {
  post(message: ToWebview): void;
}

/** Where contexts are saved so that the next session loads them from disk instead of prefilling. */
export interface ContextSnapshots {
  folder: vscode.Uri;
  log: vscode.LogOutputChannel;
}

export class ChatController implements vscode.Disposable {
  private entries: ChatEntry[];
  /** Cancels the answer being written, while there is one. */
  private current?: RpcCancellationSource;
  private prefill?: RpcCancellationSource;
  private contextInfo?: ContextInfo;
  /** The context the engine holds for us (its last chain hash), once one was opened. */
  private openedContextId?: string;
  /** The segments of that context, to name the files an update prefilled again for. */
  private openedSegments?: { id: string; hash: string }[];
  /** The background update of the context after an edit, while it runs. */
  private refreshing?: { source: RpcCancellationSource; done: Promise<void> };
  private progressValue?: PrefillProgress;
  private counter = 0;
  private view?: ChatViewPort;

  constructor(
    private readonly workspaceState: vscode.Memento,
    private readonly index: WorkspaceIndex,
    private readonly model: ModelSetting,
    private readonly engine: EngineHost,
    /** Resolves when the engine has loaded the configured model (or failed to). */
    private readonly engineLoaded: () => Promise<unknown>,
    private readonly snapshots: ContextSnapshots,
  ) {
    this.entries = workspaceState.get<ChatEntry[]>(HISTORY_KEY, []).map((entry) =>
      // A reload in the middle of an answer leaves an entry that will never finish.
      entry.status === "streaming" ? { ...entry, status: "stopped" } : entry,
    );
  }

  /** What the view's context indicator shows; undefined before the first context/open. */
  get context(): ContextInfo | undefined {
    return this.contextInfo;
  }

  /** The context prefill in progress, as the view shows it; undefined when none runs. */
  get progress(): PrefillProgress | undefined {
    return this.progressValue;
  }

  get history(): readonly ChatEntry[] {
    return this.entries;
  }

  attach(view: ChatViewPort | undefined): void {
    this.view = view;
  }

  /** Everything a freshly loaded page needs. */
  replay(): void {
    this.view?.post({ type: "history", entries: this.entries });
    if (this.contextInfo) this.view?.post({ type: "context", info: this.contextInfo });
    this.view?.post({ type: "progress", progress: this.progressValue });
  }

  /** Asks from the view: the question and its answer become a history entry. */
  async ask(question: string, sink?: AnswerSink): Promise<AnswerOutcome> {
    const text = question.trim();
    if (!text) throw new Error("The question is empty.");
    if (this.current) throw new Error("An answer is still being written; stop it or wait for it before asking again.");
    const conversation = this.conversation(text);
    const entry: ChatEntry = { id: `q${Date.now().toString(36)}-${++this.counter}`, question: text, answer: "", citedPaths: [], status: "streaming" };
    this.entries = [...this.entries, entry].slice(-MAX_HISTORY);
    const source = new RpcCancellationSource();
    this.current = source;
    this.update(entry);
    try {
      const result = await this.answer(conversation, source, (piece) => {
        entry.answer += piece;
        this.view?.post({ type: "token", id: entry.id, text: piece });
        sink?.token(piece);
      });
      entry.answer = result.text || entry.answer;
      entry.status = result.stopReason === "cancelled" ? "stopped" : "done";
      if (result.stats) entry.stats = result.stats;
      return result;
    } catch (error) {
      entry.status = "failed";
      entry.error = userMessage(error);
      throw new AnswerFailedError(entry.error);
    } finally {
      entry.citedPaths = await this.knownPaths(entry.answer);
      this.current = undefined;
      this.update(entry);
    }
  }

  /** Streams an answer to `messages` without touching the history (Explain Repository). */
  complete(messages: ChatMessage[], onToken: (text: string) => void, cancel: vscode.CancellationToken): Promise<AnswerOutcome> {
    const source = new RpcCancellationSource();
    const subscription = cancel.onCancellationRequested(() => source.cancel());
    return this.answer(messages, source, onToken).finally(() => subscription.dispose());
  }

  /** Stops the answer being written, or the prefill it waits for (a background update included). */
  stop(): void {
    this.current?.cancel();
    this.prefill?.cancel();
    this.refreshing?.source.cancel();
  }

  /**
   * The index changed: when the engine holds a context of this workspace, bring it up to date now, in the
   * background, so that the next question finds it ready. Only the tail from the first changed segment is
   * prefilled (the engine reuses the prefix). A newer change cancels an update in progress; the segments it
   * finished are kept.
   */
  refreshContext(): void {
    if (this.openedContextId === undefined || !this.engine.client.model) return;
    const previous = this.refreshing;
    previous?.source.cancel();
    const source = new RpcCancellationSource();
    const done = (async () => {
      await previous?.done;
      if (source.token.isCancellationRequested) return;
      try {
        const { segments } = await this.index.result();
        if (segments.at(-1)?.chainHash === this.openedContextId) return;
        await this.openContext(source, true);
        if (this.contextInfo) this.snapshots.log.info(`Repository context updated after an edit. ${formatContextSource(this.contextInfo)}.`);
      } catch (error) {
        const reason = error instanceof PrefillCancelledError ? "it was cancelled" : userMessage(error);
        this.snapshots.log.info(`The repository context was not updated after an edit (${reason}); the next question updates it.`);
      }
    })();
    const refresh = { source, done };
    this.refreshing = refresh;
    void done.finally(() => {
      if (this.refreshing === refresh) this.refreshing = undefined;
    });
  }

  newChat(): void {
    this.stop();
    this.entries = [];
    void this.workspaceState.update(HISTORY_KEY, this.entries);
    this.view?.post({ type: "history", entries: this.entries });
  }

  /** Paths cited in `text` that the workspace index holds. */
  async knownPaths(text: string): Promise<string[]> {
    const files = await this.indexedPaths();
    return knownCitedPaths(text, (p) => files.has(p));
  }

  /** Opens a cited file at its line, after checking the path against the index. */
  async openCitation(relativePath: string, line: number): Promise<vscode.TextEditor | undefined> {
    const files = await this.indexedPaths();
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder || !files.has(relativePath)) {
      void vscode.window.showWarningMessage(`${relativePath} is not a file of this workspace's index.`);
      return undefined;
    }
    const document = await vscode.workspace.openTextDocument(vscode.Uri.joinPath(folder.uri, ...relativePath.split("/")));
    const at = Math.min(Math.max(0, line - 1), Math.max(0, document.lineCount - 1));
    const position = new vscode.Position(at, 0);
    return vscode.window.showTextDocument(document, { selection: new vscode.Range(position, position), preview: true });
  }

  dispose(): void {
    this.stop();
  }

  private conversation(question: string): ChatMessage[] {
    const turns = this.entries.filter((e) => e.status === "done" || (e.status === "stopped" && e.answer)).slice(-MAX_TURNS_SENT);
    return [
      ...turns.flatMap((e): ChatMessage[] => [
        { role: "user", content: e.question },
        { role: "assistant", content: e.answer },
      ]),
      { role: "user", content: question },
    ];
  }

  private async answer(messages: ChatMessage[], source: RpcCancellationSource, onToken: (text: string) => void): Promise<AnswerOutcome> {
    let streamed = "";
    const collect = (text: string) => {
      streamed += text;
      onToken(text);
    };
    // A restart of the engine between opening and asking replaces the context: open it again once.
    for (let attempt = 0; ; attempt++) {
      let opened: OpenResult;
      try {
        opened = await this.openContext(source);
      } catch (error) {
        // Stop during the prefill stops the answer; Cancel on the notification is a failure the user should see.
        if (error instanceof PrefillCancelledError && source.token.isCancellationRequested) return { text: "", stopReason: "cancelled" };
        throw error;
      }
      if (source.token.isCancellationRequested) return { text: streamed, stopReason: "cancelled" };
      try {
        const result = await this.engine.client.ask(
          { contextId: opened.contextId, messages, maxTokens: MAX_ANSWER_TOKENS },
          collect,
          source.token,
        );
        void this.refreshStats();
        return { text: result.text || streamed, stopReason: result.stopReason, stats: result.stats };
      } catch (error) {
        if (isCode(error, EngineErrorCodes.cancelled)) return { text: streamed, stopReason: "cancelled" };
        if (attempt === 0 && isCode(error, EngineErrorCodes.unknownContext) && streamed === "") continue;
        throw error;
      }
    }
  }

  /** The repository context in the engine, opened (or reused) for the current index. */
  private async openContext(answer: RpcCancellationSource, background = false): Promise<OpenResult> {
    // A background update in progress: wait for it (the view shows its progress), then reuse what it prepared.
    while (!background && this.refreshing) {
      await this.refreshing.done;
      if (answer.token.isCancellationRequested) throw new PrefillCancelledError("The question was stopped while the context was being updated.");
    }
    const problem = modelProblemMessage(await this.model.refresh());
    if (problem) throw new Error(problem);
    await this.engineLoaded();
    if (!this.engine.client.model) {
      throw new Error(`The engine is not ready (${this.engine.client.health}). Check the Repo Llama Engine log ("Repo Llama: Show Engine Log").`);
    }
    const { segments } = await this.index.result();
    await vscode.workspace.fs.createDirectory(this.snapshots.folder);
    const source = new RpcCancellationSource();
    this.prefill = source;
    const forward = answer.token.onCancellationRequested(() => source.cancel());
    const startedAt = Date.now();
    // The notification appears only when the engine actually prefills (its first context/progress): a
    // context reused from memory must not flash one at every question.
    let notification: PrefillNotification | undefined;
    const onProgress = (p: ProgressParams) => {
      const etaSeconds = p.tokensPerSecond > 0 ? (p.totalTokens - p.doneTokens) / p.tokensPerSecond : undefined;
      this.setProgress({ doneTokens: p.doneTokens, totalTokens: p.totalTokens, tokensPerSecond: p.tokensPerSecond, etaSeconds });
      notification ??= new PrefillNotification(() => source.cancel());
      notification.report(this.progressValue!);
    };
    try {
      const opened = await this.engine.client.openContext(
        {
          segments: segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash })),
          snapshotDir: this.snapshots.folder.fsPath,
          workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
          maxDiskBytes: Math.floor(readConfig().cacheMaxDiskGB * 2 ** 30),
        },
        onProgress,
        source.token,
      );
      const openSeconds = (Date.now() - startedAt) / 1000;
      if (opened.source === "disk") this.snapshots.log.info(`Repository context: ${formatDiskLoad(opened.tokens, openSeconds)}.`);
      const partial = opened.tokens > opened.reusedTokens;
      this.setContext({
        tokens: opened.tokens,
        reusedTokens: opened.reusedTokens,
        prefilledTokens: opened.tokens - opened.reusedTokens,
        source: opened.source,
        openSeconds,
        reusedSegments: opened.reusedSegments,
        prefilledFrom: partial ? segments[opened.reusedSegments]?.id : undefined,
        changedFiles: partial && this.openedSegments ? changedFiles(this.openedSegments, segments) : undefined,
      });
      this.openedContextId = opened.contextId;
      this.openedSegments = segments.map(({ id, hash }) => ({ id, hash }));
      return opened;
    } catch (error) {
      if (isCode(error, EngineErrorCodes.cancelled) || source.token.isCancellationRequested) {
        throw new PrefillCancelledError(
          `Preparing the repository context was cancelled after ${((Date.now() - startedAt) / 1000).toFixed(1)} s; ask again to continue it.`,
        );
      }
      throw error;
    } finally {
      notification?.end();
      forward.dispose();
      if (this.prefill === source) this.prefill = undefined;
      this.setProgress(undefined);
    }
  }

  private async refreshStats(): Promise<void> {
    if (!this.contextInfo) return;
    try {
      const stats = await this.engine.client.stats();
      this.setContext({ ...this.contextInfo, memory: stats.memory, evictedTokens: stats.evictedTokens });
    } catch {
      // The indicator keeps the figures it has; the engine log says why stats failed.
    }
  }

  private async indexedPaths(): Promise<Set<string>> {
    try {
      return new Set((await this.index.result()).files.map((f) => f.path));
    } catch {
      return new Set();
    }
  }

  private setContext(info: ContextInfo): void {
    this.contextInfo = info;
    this.view?.post({ type: "context", info });
  }

  private setProgress(progress: PrefillProgress | undefined): void {
    this.progressValue = progress;
    this.view?.post({ type: "progress", progress });
  }

  private update(entry: ChatEntry): void {
    // New Chat while an answer was being written: that entry is gone and stays gone.
    if (!this.entries.includes(entry)) return;
    void this.workspaceState.update(HISTORY_KEY, this.entries);
    this.view?.post({ type: "entry", entry: { ...entry } });
  }
}

/** A progress notification with Cancel for one prefill, open from its first report until end(). */
class PrefillNotification {
  private progress?: vscode.Progress<{ message?: string; increment?: number }>;
  private last?: PrefillProgress;
  private reportedPercent = 0;
  private finish!: () => void;

  constructor(cancel: () => void) {
    const finished = new Promise<void>((resolve) => (this.finish = resolve));
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "Repo Llama: preparing the repository context", cancellable: true },
      (progress, token) => {
        this.progress = progress;
        const subscription = token.onCancellationRequested(cancel);
        if (this.last) this.report(this.last);
        return finished.finally(() => subscription.dispose());
      },
    );
  }

  report(p: PrefillProgress): void {
    this.last = p;
    if (!this.progress) return;
    const percent = (100 * p.doneTokens) / Math.max(1, p.totalTokens);
    this.progress.report({ increment: percent - this.reportedPercent, message: formatPrefillProgress(p) });
    this.reportedPercent = percent;
  }

  end(): void {
    this.finish();
  }
}

class PrefillCancelledError extends Error {}

/** The answer failed and its entry says why (the view shows it there). */
export class AnswerFailedError extends Error {}

function isCode(error: unknown, code: number): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

/** One line a user can act on; never a stack trace. */
export function userMessage(error: unknown): string {
  if (error instanceof EngineStoppedError) return `${sentence(error.message)} The engine restarts by itself; ask again in a moment.`;
  return error instanceof Error ? error.message : String(error);
}

function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
