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

/** One question and its answer, as kept in the workspace's history and shown in the view. */
export interface ChatEntry {
  id: string;
  question: string;
  /** Markdown as the model wrote it; rendered with raw HTML disabled. */
  answer: string;
  /** Cited paths that exist in the workspace index: only these become links. */
  citedPaths: string[];
  /** How the answer ended; "streaming" while tokens still arrive. */
  status: "streaming" | "done" | "stopped" | "failed";
  /** Why it failed, for the user. */
  error?: string;
  /** The engine's figures for this answer. */
  stats?: { reusedTokens: number; questionTokens: number; generatedTokens: number; timeToFirstTokenMs: number; tokensPerSecond: number };
}

/** What the context indicator shows; figures the engine does not report are absent. */
export interface ContextInfo {
  tokens: number;
  reusedTokens: number;
  prefilledTokens: number;
  source: "memory" | "disk" | "prefill";
  /** Seconds the context/open request took, as the extension measured it. */
  openSeconds?: number;
  /** Segments (prompt head, files) reused as they were. */
  reusedSegments?: number;
  /**
   * The segment the prefill started at (the first whose position changed), when something was prefilled.
   * Files are ordered stable-first, so after an edit this is usually the file that followed the edited one,
   * not the edited file itself (that one moved to the end): hence changedFiles.
   */
  prefilledFrom?: string;
  /** Files edited, added or removed since the context this one was updated from; absent on a first open. */
  changedFiles?: string[];
  /** KV memory per tier (engine/stats), when the engine reported it. */
  memory?: { fastBytes: number; hostBytes: number; diskBytes: number };
  /** Tokens dropped for good under repoLlama.kv.maxTokensHeld (engine/stats); absent or 0: every token held. */
  evictedTokens?: number;
}

/** A context prefill in progress, mirrored from the notification. */
export interface PrefillProgress {
  doneTokens: number;
  totalTokens: number;
  tokensPerSecond: number;
  /** Seconds left at the current speed; undefined before the speed is known. */
  etaSeconds?: number;
}

/** Extension → webview. */
export type ToWebview =
  | { type: "state"; state: ViewState }
  /** A short markdown note for the answer area (rendered with raw HTML disabled). */
  | { type: "notice"; markdown: string }
  /** The whole conversation (on load, after New Chat). */
  | { type: "history"; entries: ChatEntry[] }
  /** A new or changed entry: a question was asked or its answer ended. */
  | { type: "entry"; entry: ChatEntry }
  /** More answer text for the streaming entry. */
  | { type: "token"; id: string; text: string }
  | { type: "context"; info: ContextInfo }
  /** undefined when no prefill runs (any more). */
  | { type: "progress"; progress?: PrefillProgress };

/** Commands the webview's buttons may run; the extension rejects anything else. */
export const viewCommands = [CommandIds.selectModel, CommandIds.downloadModel, CommandIds.reindex] as const;
export type ViewCommand = (typeof viewCommands)[number];

/** Webview → extension. */
export type FromWebview =
  | { type: "ready" }
  | { type: "run"; command: ViewCommand }
  | { type: "ask"; question: string }
  /** Stop the answer being streamed, or the prefill it waits for. */
  | { type: "stop" }
  | { type: "newChat" }
  | { type: "openCitation"; path: string; line: number }
  | { type: "copy"; text: string };

export const SELECT_MODEL = "Select Model";
export const DOWNLOAD_MODEL = "Download Model";

export const NO_MODEL_MESSAGE =
  "No model is configured. Repo Llama answers with a local Llama-3 model in GGUF format: select a .gguf file on this machine or download one.";

export const ENGINE_STARTS_MESSAGE =
  "The engine starts with the configured model; Show Engine Log tells what it is doing.";

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
  return model.kind === "configured" ? undefined : "Select a model to ask questions about this workspace.";
}

export const CHAT_HINT = "Enter sends, Shift+Enter starts a new line, Escape stops the answer.";

/** "64 tokens at 38 tokens/s · first token after 40 ms · 213 context tokens reused, 12 prefilled for the question" */
export function formatAnswerStats(stats: NonNullable<ChatEntry["stats"]>): string {
  const n = (value: number) => value.toLocaleString("en-US");
  return (
    `${n(stats.generatedTokens)} tokens at ${Math.round(stats.tokensPerSecond)} tokens/s · ` +
    `first token after ${n(Math.round(stats.timeToFirstTokenMs))} ms · ` +
    `${n(stats.reusedTokens)} context tokens reused, ${n(stats.questionTokens)} prefilled for the question`
  );
}

/** "loaded 812k tokens from cache in 3.1 s": a context that came back from its saved snapshot. */
export function formatDiskLoad(tokens: number, seconds: number): string {
  const count = tokens < 1000 ? `${tokens}` : tokens < 1_000_000 ? `${Math.round(tokens / 1000)}k` : `${(tokens / 1_000_000).toFixed(1)}M`;
  return `loaded ${count} tokens from cache in ${seconds.toFixed(1)} s`;
}

/**
 * "Context: 1,234 tokens (1,000 reused, 234 prefilled from src/cart.ts on, after src/price.ts changed)":
 * what the context indicator says first, and the log after an update.
 */
export function formatContextSource(info: ContextInfo): string {
  const n = (value: number) => value.toLocaleString("en-US");
  if (info.source !== "prefill") return `Context: ${n(info.tokens)} tokens (all from ${info.source})`;
  let from = "";
  if (info.prefilledFrom && info.reusedTokens > 0) {
    const changed = info.changedFiles ?? [];
    const which =
      changed.length === 1 && changed[0] === info.prefilledFrom
        ? "it"
        : changed.length <= 2
          ? changed.join(" and ")
          : `${changed[0]} and ${changed.length - 1} more files`;
    from = ` from ${info.prefilledFrom} on${changed.length ? `, after ${which} changed` : ""}`;
  }
  return `Context: ${n(info.tokens)} tokens (${n(info.reusedTokens)} reused, ${n(info.prefilledTokens)} prefilled${from})`;
}

/** The prompt's frame around the files: not a file the user changed. */
const FRAME_SEGMENTS = new Set(["head", "tail"]);

/**
 * Files whose text differs between two segment lists: edited or added ones in the order of `after` (the
 * stable-first order puts the most recent edits last), then removed ones.
 */
export function changedFiles(before: readonly { id: string; hash: string }[], after: readonly { id: string; hash: string }[]): string[] {
  const old = new Map(before.map((s) => [s.id, s.hash]));
  const current = new Set(after.map((s) => s.id));
  return [
    ...after.filter((s) => old.get(s.id) !== s.hash).map((s) => s.id),
    ...before.filter((s) => !current.has(s.id)).map((s) => s.id),
  ].filter((id) => !FRAME_SEGMENTS.has(id));
}

/** "12,345 of 50,000 tokens · 812 tokens/s · about 46 s left" */
export function formatPrefillProgress(p: PrefillProgress): string {
  const counts = `${p.doneTokens.toLocaleString("en-US")} of ${p.totalTokens.toLocaleString("en-US")} tokens`;
  if (p.tokensPerSecond <= 0) return counts;
  const eta = p.etaSeconds === undefined ? "" : ` · about ${formatSeconds(p.etaSeconds)} left`;
  return `${counts} · ${Math.round(p.tokensPerSecond).toLocaleString("en-US")} tokens/s${eta}`;
}

function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function isViewCommand(value: unknown): value is ViewCommand {
  return (viewCommands as readonly unknown[]).includes(value);
}
