// repo-llama ask: the extension's whole pipeline from a terminal. The workspace is indexed with the
// extension's rules, the DESIGN §6 prompt is prefilled into an HCAttention context (or loaded from a saved
// snapshot, then only the changed tail is prefilled), and the answer is streamed to stdout. The repository
// context and the question turn are handled by the sidecar's ContextSession, so the CLI and the extension
// build the same tokens and reuse a snapshot under the same rules.
import * as path from "node:path";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { ResponseError } from "vscode-jsonrpc";
import { formatBytes, formatIndexTotals, formatSkipped } from "../chat/summary";
import type { ContextOptions, Model } from "../engine/addon";
import { EngineErrorCodes, type OpenResult } from "../engine/protocol";
import { checkGgufFile, ModelFileError } from "../model/modelFile";
import { ContextSession, type OpenHooks } from "../sidecar/sessions";
import { defaultIndexOptions, indexWorkspace } from "../workspace/index";
import type { CliCommand } from "./commands";
import { kvArgOptions, kvContextOptions, kvUsage, loadModel, numberOption, runCommand, UsageError } from "./model-args";

const PREFILL_BATCH = 512;

const usage = `usage: repo-llama ask --model M [--workspace DIR] [--snapshot FILE] [options] "question"

Indexes DIR (default: the current folder) as the extension does, prefills the repository prompt with
HCAttention (default --kv 25%, as the extension; progress on stderr) and streams the answer to stdout. Ctrl-C stops the prefill after its
current chunk (or the answer after its current token); a second Ctrl-C exits at once.
  --snapshot FILE  load the saved context from FILE when it was saved with the same model and KV settings,
                   prefill only the files that changed since, and save it again; without FILE, or when it
                   does not match, prefill everything and save it there
  -n N             answer tokens at most (default 512)
  --temperature T  0 is greedy (default 0)
  --seed S         draws are reproducible for a seed (default 0)
  --star-block N   the repository prompt attends in star-attention blocks of N positions (linear in its size;
                   the question and the answer attend to the whole cache); 0: every token uses the top-p
                   selection (default: the engine's, as the extension; HCAttention budgets only)
  --context N      context positions (default: the model's trained context with an HCAttention budget;
                   with f32/f16/full, which allocate every position, what the workspace needs)
  --threads N      engine threads (0: all cores)
${kvUsage}`;

/** Room for the question turn's headers and the estimate's error: the estimate is 0.8–1.2× the true count. */
const ESTIMATE_SLACK = 1.5;

/** Ctrl-C: the first asks the running step to stop; a second leaves at once. */
class Interrupt {
  cancelled = false;
  private listeners = new Set<() => void>();
  private readonly onSignal = () => {
    if (this.cancelled) process.exit(130);
    this.cancelled = true;
    process.stderr.write("\nstopping (Ctrl-C again to quit now)\n");
    for (const listener of this.listeners) listener();
  };

  constructor() {
    process.on("SIGINT", this.onSignal);
  }

  hooks(): Omit<OpenHooks, "progress"> {
    return {
      isCancelled: () => this.cancelled,
      onCancel: (listener) => {
        this.listeners.add(listener);
        return { dispose: () => this.listeners.delete(listener) };
      },
    };
  }

  dispose(): void {
    process.off("SIGINT", this.onSignal);
  }
}

/** Prefill progress on stderr: one line rewritten in place on a terminal, a line per second otherwise. */
function progressPrinter(): { progress: OpenHooks["progress"]; end(): void } {
  const tty = process.stderr.isTTY;
  let lastLine = 0;
  let shown = false;
  return {
    progress(done, total, tokensPerSecond) {
      const now = performance.now();
      if (!tty && now - lastLine < 1000 && done < total) return;
      lastLine = now;
      shown = true;
      const percent = total > 0 ? Math.floor((100 * done) / total) : 100;
      const speed = tokensPerSecond > 0 ? `, ${tokensPerSecond.toFixed(0)} tok/s` : "";
      const line = `prefill ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} tokens (${percent}%${speed})`;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
    end() {
      if (tty && shown) process.stderr.write("\n");
    },
  };
}

function isEngineError(error: unknown, code: number): error is ResponseError<void> {
  return error instanceof ResponseError && error.code === code;
}

async function checkModelFile(modelPath: string | undefined): Promise<string> {
  if (!modelPath) throw new UsageError("--model PATH (a GGUF file) is required");
  const absolute = path.resolve(modelPath);
  try {
    await checkGgufFile(absolute);
  } catch (error) {
    if (error instanceof ModelFileError) throw new Error(`${error.message} Pass --model the path of a Llama-3 model in GGUF format.`);
    throw error;
  }
  return absolute;
}

/** Context positions: what --context says, else the extension's rule (see the usage text). */
function contextSize(model: Model, explicit: string | undefined, budgeted: boolean, estimatedTokens: number, answerTokens: number): number {
  if (explicit !== undefined) {
    const n = numberOption("context", explicit, 0);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--context must be a positive integer, got "${explicit}"`);
    return n;
  }
  if (budgeted) return model.info.nCtxTrain;
  return Math.min(model.info.nCtxTrain, Math.ceil(estimatedTokens * ESTIMATE_SLACK) + answerTokens + 256);
}

function describeOpen(opened: OpenResult): string {
  const prefilled = opened.tokens - opened.reusedTokens;
  if (prefilled === 0) return `context: all ${opened.tokens} tokens reused, nothing to prefill`;
  const speed = opened.tokensPerSecond > 0 ? ` (${opened.tokensPerSecond.toFixed(1)} tok/s)` : "";
  const reused = opened.reusedTokens > 0 ? `, ${opened.reusedTokens} reused` : "";
  return `prefilled ${prefilled} tokens in ${opened.prefillSeconds.toFixed(2)} s${speed}${reused}; context ${opened.tokens} tokens`;
}

async function saveContext(session: ContextSession, file: string): Promise<void> {
  const saved = await session.save(file);
  process.stderr.write(`saved ${session.tokens} tokens to ${file} (${formatBytes(saved.bytes)}) in ${saved.seconds.toFixed(2)} s\n`);
}

export const askCommand: CliCommand = {
  summary: "answer a question about a folder: index, prefill with HCAttention (or load a snapshot), stream the answer",
  run: (args) =>
    runCommand("ask", usage, async () => {
      let parsed;
      try {
        parsed = parseArgs({
          args,
          allowPositionals: true,
          strict: true,
          options: {
            model: { type: "string" },
            workspace: { type: "string" },
            snapshot: { type: "string" },
            n: { type: "string", short: "n" },
            temperature: { type: "string" },
            seed: { type: "string" },
            context: { type: "string" },
            "star-block": { type: "string" },
            threads: { type: "string" },
            ...kvArgOptions,
          },
        });
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const v = parsed.values;
      const question = parsed.positionals.join(" ").trim();
      if (!question) throw new UsageError("the question is missing: put it after the options, in quotes");
      const kv = kvContextOptions({ ...v, kv: v.kv ?? "25%" });
      const snapshotFile = v.snapshot === undefined ? undefined : path.resolve(v.snapshot);
      if (snapshotFile && !kv.kv) {
        throw new UsageError("--snapshot needs an HCAttention budget (--kv 50%, 25% or 12.5%): a full cache is not saved");
      }
      const starBlock = v["star-block"] === undefined ? undefined : numberOption("star-block", v["star-block"], 0);
      if (starBlock !== undefined && (!Number.isInteger(starBlock) || starBlock < 0)) {
        throw new UsageError(`--star-block must be 0 or a positive integer, got "${v["star-block"]}"`);
      }
      if (starBlock !== undefined && !kv.kv) throw new UsageError("--star-block applies to the HCAttention budgets (--kv 50%|25%|12.5%)");
      const maxTokens = numberOption("n", v.n, 512);
      const sampling = { temperature: numberOption("temperature", v.temperature, 0), seed: numberOption("seed", v.seed, 0) };
      const modelPath = await checkModelFile(v.model);

      const root = path.resolve(v.workspace ?? ".");
      const index = await indexWorkspace(root, { ...defaultIndexOptions });
      process.stderr.write(`indexed ${root}: ${formatIndexTotals(index.stats)} in ${index.stats.ms} ms (${formatSkipped(index.stats.skipped)})\n`);

      const model = await loadModel(modelPath, v.threads, v.device);
      const nCtx = contextSize(model, v.context, kv.kv !== undefined, index.stats.estimatedTokens, maxTokens);
      const contextOptions: ContextOptions = { nCtx, nBatch: PREFILL_BATCH, ...kv, ...(kv.kv && starBlock !== undefined && { kv: { ...kv.kv, starBlock } }) };
      const session = new ContextSession(model, model.createContext(contextOptions), contextOptions);
      const interrupt = new Interrupt();
      const printer = progressPrinter();
      try {
        let opened: OpenResult;
        try {
          opened = await session.open(
            {
              segments: index.segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash })),
              snapshotDir: "",
              workspaceFolder: root,
            },
            { ...interrupt.hooks(), progress: printer.progress },
            snapshotFile ? { file: snapshotFile, log: (line) => process.stderr.write(`${line}\n`) } : undefined,
          );
        } catch (error) {
          printer.end();
          if (isEngineError(error, EngineErrorCodes.cancelled)) {
            // The files prefilled before the cancel are whole segments: saved, the next run starts after them.
            if (snapshotFile && session.tokens > 0) await saveContext(session, snapshotFile);
            const lost = snapshotFile ? "" : " (without --snapshot FILE they are lost when this command exits)";
            process.stderr.write(`${error.message}${lost}\n`);
            return 130;
          }
          if (isEngineError(error, EngineErrorCodes.doesNotFit)) {
            throw new Error(
              `the workspace does not fit in a context of ${nCtx} positions. Pass a larger --context N (the model was trained ` +
                `for ${model.info.nCtxTrain}), or leave folders out with .repollamaignore.`,
            );
          }
          throw error;
        }
        printer.end();
        process.stderr.write(`${describeOpen(opened)}\n`);
        const evicted = session.context.kvMemory().evictedTokens;
        if (evicted > 0) process.stderr.write(`value cap: ${evicted} of ${opened.tokens} tokens evicted, ${opened.tokens - evicted} held\n`);
        if (snapshotFile && (opened.tokens > opened.reusedTokens || !existsSync(snapshotFile))) await saveContext(session, snapshotFile);

        const answer = await session.ask(
          { contextId: opened.contextId, requestId: "cli", messages: [{ role: "user", content: question }], maxTokens, sampling },
          { ...interrupt.hooks(), token: (text) => process.stdout.write(text) },
        );
        process.stdout.write("\n");
        const s = answer.stats;
        process.stderr.write(
          `[${s.generatedTokens} tokens, ${s.tokensPerSecond.toFixed(2)} tok/s, first token after ${s.timeToFirstTokenMs.toFixed(0)} ms, ` +
            `question ${s.questionTokens} tokens after ${s.reusedTokens} of context, stop: ${answer.stopReason}]\n`,
        );
        return answer.stopReason === "cancelled" ? 130 : 0;
      } finally {
        interrupt.dispose();
        session.dispose();
        await session.idle();
      }
    }),
};
