// The repository context of one loaded model and the questions asked against it.
//
// Invariants:
// - `placed` lists the segments whose tokens are in `ctx`, in order, with their token ranges; the context
//   holds exactly placed[last].end tokens between operations (nothing else: no question is left behind).
// - A segment is placed only when its tokens are complete, so a cancelled prefill leaves the context cut
//   at a segment boundary and everything before it is reused by the next context/open.
// - The repository prefix is prefilled in the engine's document phase (star-attention blocks when the KV
//   options set starBlock: linear in the repository); a question is prefilled in the global phase, attending
//   to the whole cache as decoding does.
// - A question never modifies the repository prefix: its turn is appended after the prefix and removed with
//   truncate(prefix), which keeps the prefix's KV entries exact. This is a fork without a copy (the
//   engine's fork() copies the whole KV capacity, which would double the memory of a large context).
// - A context loaded from a snapshot file replaces `ctx` only when it keeps at least one segment; the
//   snapshot's segments are named by chain hash, so a kept segment is exactly the prompt asked for.
// - One operation at a time runs on the context (the engine computes one thing at a time anyway): a
//   question asked during a prefill waits for it.
import { existsSync } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { ResponseError } from "vscode-jsonrpc";
import type { Context, ContextOptions, KvMemory, Model } from "../engine/addon";
import {
  type AskParams,
  type AskResult,
  type ChatMessage,
  EngineErrorCodes,
  type OpenParams,
  type OpenResult,
  type SegmentRef,
  type StopReason,
} from "../engine/protocol";

interface Placed {
  id: string;
  chainHash: string;
  start: number;
  end: number;
}

/** What the caller of a long operation hears about: progress and cancellation. */
export interface OperationHooks {
  isCancelled(): boolean;
  onCancel(listener: () => void): { dispose(): void };
}

export interface OpenHooks extends OperationHooks {
  progress(doneTokens: number, totalTokens: number, tokensPerSecond: number): void;
}

/** Where the context of this workspace is saved, and where a snapshot that cannot be used is reported. */
export interface SnapshotPlace {
  file: string;
  log(line: string): void;
}

export interface AskHooks extends OperationHooks {
  token(text: string): void;
}

export interface SavedFile {
  bytes: number;
  seconds: number;
}

/** Segments whose text holds the prompt's own special tokens; file contents never do. */
const PROMPT_FRAME_SEGMENTS = new Set(["head", "tail"]);

export class ContextSession {
  private placed: Placed[] = [];
  /** Token ids of the current segments by content hash, so that an edit re-tokenizes only what changed. */
  private tokenCache = new Map<string, Int32Array>();
  private queue: Promise<unknown> = Promise.resolve();
  lastPrefillTokensPerSecond = 0;
  lastDecodeTokensPerSecond = 0;

  constructor(
    private readonly model: Model,
    private ctx: Context,
    private readonly contextOptions: ContextOptions,
    /**
     * The memory guard: why a context of `tokens` tokens would not fit, given the KV bytes per tier the
     * current context holds (which the new one reuses), or undefined when it fits.
     */
    private readonly memoryGuard: (tokens: number, held: Pick<KvMemory, "fastBytes" | "hostBytes">) => string | undefined = () => undefined,
  ) {}

  get context(): Context {
    return this.ctx;
  }

  get tokens(): number {
    return this.placed.length ? this.placed[this.placed.length - 1].end : 0;
  }

  get capacity(): number {
    return this.ctx.nCtx;
  }

  /** The id of the context as it is now: its last chain hash fixes every byte of the prompt. */
  get contextId(): string {
    return this.placed.length ? this.placed[this.placed.length - 1].chainHash : "";
  }

  open(params: OpenParams, hooks: OpenHooks, snapshot?: SnapshotPlace): Promise<OpenResult> {
    return this.exclusive(() => this.openNow(params, hooks, snapshot));
  }

  /**
   * Saves the repository prefix (never a question) with its segments' token ranges. `thenWithFile` runs
   * before any other operation on the context, so that no other save of the same file comes in between.
   */
  save(file: string): Promise<SavedFile>;
  save<T>(file: string, thenWithFile: (saved: SavedFile) => Promise<T>): Promise<T>;
  save<T>(file: string, thenWithFile?: (saved: SavedFile) => Promise<T>): Promise<T | SavedFile> {
    return this.exclusive(async () => {
      if (this.tokens === 0) throw new Error("There is no repository context to save; open one with context/open first.");
      const started = performance.now();
      const segments = this.placed.map((p) => ({ id: p.id, hash: p.chainHash, begin: p.start, end: p.end }));
      await this.ctx.saveSnapshot(file, segments);
      const saved = { bytes: (await stat(file)).size, seconds: (performance.now() - started) / 1000 };
      return thenWithFile ? thenWithFile(saved) : saved;
    });
  }

  ask(params: AskParams, hooks: AskHooks): Promise<AskResult> {
    const received = performance.now();
    return this.exclusive(() => this.askNow(params, hooks, received));
  }

  /** Resolves once the queued operations (a save after a prefill among them) are done. */
  async idle(): Promise<void> {
    await this.queue;
  }

  dispose(): void {
    this.ctx.cancel();
    void this.queue.finally(() => this.ctx.dispose());
  }

  private exclusive<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async openNow(params: OpenParams, hooks: OpenHooks, snapshot?: SnapshotPlace): Promise<OpenResult> {
    const { segments } = params;
    if (segments.length === 0) {
      throw new ResponseError(EngineErrorCodes.unsupported, "context/open needs at least one segment (the prompt head).");
    }
    const ids = await this.tokenizeSegments(segments);

    let fromDisk = false;
    if (snapshot && !(this.placed.length > 0 && this.placed[0].chainHash === segments[0].chainHash)) {
      fromDisk = await this.loadSnapshot(snapshot, segments);
    }

    let kept = 0;
    while (kept < this.placed.length && kept < segments.length && this.placed[kept].chainHash === segments[kept].chainHash) kept++;
    const reusedTokens = kept > 0 ? this.placed[kept - 1].end : 0;
    const totalTokens = reusedTokens + ids.slice(kept).reduce((sum, t) => sum + t.length, 0);
    // Checked before anything is dropped: a refused workspace leaves the context as it was.
    if (totalTokens > this.ctx.nCtx) {
      throw new ResponseError(
        EngineErrorCodes.doesNotFit,
        `The workspace is ${totalTokens.toLocaleString("en-US")} tokens but the context holds ${this.ctx.nCtx.toLocaleString("en-US")}. ` +
          "Exclude folders with repoLlama.index.exclude or .repollamaignore, or raise repoLlama.contextBudgetTokens if memory allows.",
      );
    }
    if (totalTokens > this.tokens) {
      const refusal = this.memoryGuard(totalTokens, this.ctx.kvMemory());
      if (refusal) throw new ResponseError(EngineErrorCodes.doesNotFit, refusal);
    }

    this.placed.length = kept;
    if (this.ctx.nPast !== reusedTokens) this.ctx.truncate(reusedTokens);

    const pending = new Int32Array(totalTokens - reusedTokens);
    const planned: Placed[] = [];
    let at = reusedTokens;
    for (let i = kept; i < segments.length; i++) {
      pending.set(ids[i], at - reusedTokens);
      planned.push({ id: segments[i].id, chainHash: segments[i].chainHash, start: at, end: at + ids[i].length });
      at += ids[i].length;
    }

    const contextId = segments[segments.length - 1].chainHash;
    let prefillSeconds = 0;
    let tokensPerSecond = 0;
    if (pending.length > 0) {
      if (hooks.isCancelled()) throw this.cancelledOpen(0, pending.length);
      hooks.progress(reusedTokens, totalTokens, 0);
      const subscription = hooks.onCancel(() => this.ctx.cancel());
      try {
        const result = await this.ctx.prefill(pending, (p) => hooks.progress(reusedTokens + p.done, totalTokens, p.tokensPerSecond));
        prefillSeconds = result.seconds;
        tokensPerSecond = result.tokensPerSecond;
      } finally {
        subscription.dispose();
        // Place what is complete, whether the prefill ran to the end, was cancelled or failed.
        const reached = this.ctx.nPast;
        this.placed.push(...planned.filter((p) => p.end <= reached));
        if (reached !== this.tokens) this.ctx.truncate(this.tokens);
      }
      if (this.tokens < totalTokens) throw this.cancelledOpen(this.tokens - reusedTokens, pending.length);
      this.lastPrefillTokensPerSecond = tokensPerSecond;
    }
    return {
      contextId,
      tokens: totalTokens,
      reusedTokens,
      source: fromDisk && reusedTokens > 0 ? "disk" : pending.length === 0 ? "memory" : "prefill",
      reusedSegments: kept,
      prefillSeconds,
      tokensPerSecond,
    };
  }

  /**
   * Replaces the context with the snapshot's longest prefix of matching segments; false when none match or
   * the file cannot be used (a damaged or foreign file is deleted so that the next save replaces it).
   */
  private async loadSnapshot(snapshot: SnapshotPlace, segments: SegmentRef[]): Promise<boolean> {
    if (!existsSync(snapshot.file)) return false;
    const started = performance.now();
    let loaded: Awaited<ReturnType<Model["loadContext"]>>;
    try {
      loaded = await this.model.loadContext(snapshot.file, this.contextOptions, -1);
    } catch (error) {
      snapshot.log(`saved context ${snapshot.file} cannot be used (${(error as Error).message}); deleted it, prefilling instead`);
      await rm(snapshot.file, { force: true });
      return false;
    }
    const saved = loaded.segments;
    let kept = 0;
    while (kept < saved.length && kept < segments.length && saved[kept].hash === segments[kept].chainHash) kept++;
    if (kept === 0) {
      loaded.context.dispose();
      return false;
    }
    const keep = saved[kept - 1].end;
    if (loaded.context.nPast !== keep) loaded.context.truncate(keep);
    this.ctx.dispose();
    this.ctx = loaded.context;
    this.placed = saved.slice(0, kept).map((s) => ({ id: s.id, chainHash: s.hash, start: s.begin, end: s.end }));
    const seconds = (performance.now() - started) / 1000;
    snapshot.log(`loaded ${keep} tokens (${kept} of ${saved.length} saved segments) from ${snapshot.file} in ${seconds.toFixed(3)} s`);
    return true;
  }

  private cancelledOpen(done: number, total: number): ResponseError<void> {
    return new ResponseError(
      EngineErrorCodes.cancelled,
      `Prefill cancelled after ${done.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} tokens; ` +
        "the finished files are kept and reused when the context is opened again.",
    );
  }

  private async tokenizeSegments(segments: SegmentRef[]): Promise<Int32Array[]> {
    const next = new Map<string, Int32Array>();
    const ids: Int32Array[] = [];
    for (const segment of segments) {
      // Prompt-frame segments and files with the same text would tokenize differently: key by both.
      const special = PROMPT_FRAME_SEGMENTS.has(segment.id);
      const key = `${special ? "s" : "t"}:${segment.hash}`;
      let tokens = next.get(key) ?? this.tokenCache.get(key);
      // A file's text is data: "<|eot_id|>" inside a file must not end the user turn.
      tokens ??= await this.model.tokenize(segment.text, false, special);
      next.set(key, tokens);
      ids.push(tokens);
    }
    this.tokenCache = next;
    return ids;
  }

  private async askNow(params: AskParams, hooks: AskHooks, received: number): Promise<AskResult> {
    if (params.contextId !== this.contextId || this.contextId === "") {
      throw new ResponseError(
        EngineErrorCodes.unknownContext,
        "The repository context changed since this question was prepared (or was never opened); open it again with context/open.",
      );
    }
    const prefix = this.tokens;
    const stats = { reusedTokens: prefix, questionTokens: 0, generatedTokens: 0, timeToFirstTokenMs: 0, tokensPerSecond: 0 };
    const cancelled = (text: string): AskResult => ({ text, stopReason: "cancelled", stats });
    if (hooks.isCancelled()) return cancelled("");

    const turn = await this.conversationTokens(params.messages);
    stats.questionTokens = turn.length;
    if (prefix + turn.length >= this.ctx.nCtx) {
      throw new ResponseError(
        EngineErrorCodes.doesNotFit,
        `The conversation (${turn.length} tokens) does not fit after the repository (${prefix} of ${this.ctx.nCtx} tokens). Start a new chat.`,
      );
    }
    const subscription = hooks.onCancel(() => this.ctx.cancel());
    try {
      const prefilled = await this.ctx.prefill(turn, undefined, { global: true });
      // The engine clears its cancel flag when an operation starts: a cancel between the two calls is seen here.
      if (prefilled.cancelled || hooks.isCancelled()) return cancelled("");
      let first = true;
      const result = await this.ctx.generate(
        {
          maxTokens: params.maxTokens,
          sampling: { temperature: 0, ...params.sampling },
        },
        (text) => {
          if (first) {
            stats.timeToFirstTokenMs = performance.now() - received;
            first = false;
          }
          if (text) hooks.token(text);
        },
      );
      stats.generatedTokens = result.stats.generatedTokens;
      stats.tokensPerSecond = result.stats.tokensPerSecond;
      if (result.stats.generatedTokens > 1) this.lastDecodeTokensPerSecond = result.stats.tokensPerSecond;
      const stopReason: StopReason = hooks.isCancelled() ? "cancelled" : result.stopReason;
      return { text: result.text, stopReason, stats };
    } finally {
      subscription.dispose();
      this.ctx.truncate(prefix);
    }
  }

  /** The conversation as Llama-3 turns after the repository, ending with the assistant header to answer after. */
  private async conversationTokens(messages: ChatMessage[]): Promise<Int32Array> {
    if (messages.length === 0 || messages[messages.length - 1].role !== "user") {
      throw new ResponseError(EngineErrorCodes.unsupported, "chat/ask needs a conversation that ends with the user's question.");
    }
    const parts: Int32Array[] = [];
    for (const message of messages) {
      parts.push(await this.model.tokenize(`<|start_header_id|>${message.role}<|end_header_id|>\n\n`, false, true));
      parts.push(await this.model.tokenize(message.content, false, false));
      parts.push(await this.model.tokenize("<|eot_id|>", false, true));
    }
    parts.push(await this.model.tokenize("<|start_header_id|>assistant<|end_header_id|>\n\n", false, true));
    const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
