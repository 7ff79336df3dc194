// repo-llama stats: fills a KV cache with N tokens and prints the bytes it really holds per tier.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CliCommand } from "./commands";
import { kvArgOptions, kvContextOptions, kvUsage, loadModel, numberOption, parseCommandArgs, runCommand, UsageError } from "./model-args";

const usage = `usage: repo-llama stats --model M --tokens N [--kv MODE] [--json]

Prefills N tokens (a fixed pseudo-random sequence of ordinary tokens) and reports the KV cache's measured
bytes per token in each tier — fast (read by every step), host (read for the selected tokens), disk (the
saved snapshot, HCAttention budgets only) — and the fast tier as a share of an f16 K+V cache.
  --tokens N   tokens to fill (required)
  --json       one JSON object instead of text
  --threads N  engine threads (0: all cores)
${kvUsage}`;

/** Deterministic ordinary token ids (no control tokens), the same for every run. */
function fillTokens(n: number, bos: number, vocab: number): number[] {
  const ids = [bos];
  let s = 12345;
  const span = Math.max(1, Math.min(vocab, 128000) - 1000);
  while (ids.length < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids.push(1000 + (s % span));
  }
  return ids.slice(0, n);
}

export const statsCommand: CliCommand = {
  summary: "fill a KV cache with N tokens and print its measured bytes per token in each tier",
  run: (args) =>
    runCommand("stats", usage, async () => {
      const v = parseCommandArgs(args, {
        model: { type: "string" },
        tokens: { type: "string" },
        json: { type: "boolean" },
        threads: { type: "string" },
        ...kvArgOptions,
      });
      if (v.tokens === undefined) throw new UsageError("--tokens N is required");
      const n = numberOption("tokens", v.tokens, 0);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--tokens must be a positive integer, got "${v.tokens}"`);
      const kv = kvContextOptions(v);
      const model = await loadModel(v.model, v.threads, v.device);
      const ctx = model.createContext({ nCtx: n, ...kv });
      const started = performance.now();
      try {
        await ctx.prefill(fillTokens(n, model.info.bos, model.info.nVocab));
        const prefillSeconds = (performance.now() - started) / 1000;
        const m = ctx.kvMemory();
        let diskBytes: number | null = null;
        if (kv.kv) {
          const dir = mkdtempSync(join(tmpdir(), "repo-llama-stats-"));
          try {
            const file = join(dir, "stats.hckv");
            await ctx.saveSnapshot(file, []);
            diskBytes = statSync(file).size;
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
        const perToken = (bytes: number) => bytes / m.tokens;
        const report = {
          model: model.info.name,
          kv: kv.kv?.mode ?? kv.kvType ?? "f32",
          tokens: m.tokens,
          prefillSeconds,
          f16BytesPerToken: m.f16BytesPerToken,
          tiers: {
            fast: { bytesPerToken: perToken(m.fastBytes) },
            host: { bytesPerToken: perToken(m.hostBytes) },
            disk: { bytesPerToken: diskBytes === null ? null : perToken(diskBytes) },
          },
          fastPercentOfF16: (100 * perToken(m.fastBytes)) / m.f16BytesPerToken,
        };
        if (v.json) {
          process.stdout.write(`${JSON.stringify(report)}\n`);
        } else {
          const fmt = (x: number | null) => (x === null ? "-" : `${x.toFixed(1)} B/token`);
          process.stdout.write(
            `${report.model}, kv ${report.kv}, ${report.tokens} tokens (prefill ${prefillSeconds.toFixed(2)} s)\n` +
              `  fast ${fmt(report.tiers.fast.bytesPerToken)} (${report.fastPercentOfF16.toFixed(2)}% of f16 K+V, ${m.f16BytesPerToken} B/token)\n` +
              `  host ${fmt(report.tiers.host.bytesPerToken)}\n` +
              `  disk ${fmt(report.tiers.disk.bytesPerToken)}\n`,
          );
        }
      } finally {
        ctx.dispose();
      }
      return 0;
    }),
};
