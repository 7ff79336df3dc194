// repo-llama eval: the model's next-token log-probabilities at every position of a token sequence.
import { readFile } from "node:fs/promises";
import type { CliCommand } from "./commands";
import { kvArgOptions, kvContextOptions, kvUsage, loadModel, numberOption, parseCommandArgs, runCommand, UsageError } from "./model-args";

const usage = `usage: repo-llama eval --model M --tokens-file F [--top K] [--kv MODE]

F holds a JSON array of token ids. Prints one JSON line per position:
  {"pos": i, "top": [[id, logprob], ...]}   the K most likely next tokens (natural-log probabilities)
  --top K      how many tokens per position (default 5)
  --threads N  engine threads (0: all cores)
${kvUsage}`;

export const evalCommand: CliCommand = {
  summary: "print the top-K next-token log-probabilities at every position of a token sequence",
  run: (args) =>
    runCommand("eval", usage, async () => {
      const v = parseCommandArgs(args, {
        model: { type: "string" },
        "tokens-file": { type: "string" },
        top: { type: "string" },
        threads: { type: "string" },
        ...kvArgOptions,
      });
      if (!v["tokens-file"]) throw new UsageError("--tokens-file F is required");
      const kv = kvContextOptions(v);
      const topK = numberOption("top", v.top, 5);
      let ids: unknown;
      try {
        ids = JSON.parse(await readFile(v["tokens-file"], "utf8"));
      } catch (error) {
        throw new Error(`${v["tokens-file"]}: not a JSON array of token ids (${(error as Error).message})`);
      }
      if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x))) {
        throw new Error(`${v["tokens-file"]}: expected a JSON array of integer token ids`);
      }
      const model = await loadModel(v.model, v.threads, v.device);
      const ctx = model.createContext({ nCtx: Math.max(1, ids.length), ...kv });
      const result = await ctx.evalLogits(ids as number[], topK);
      const lines = result.top.map((top, pos) => JSON.stringify({ pos, top }));
      process.stdout.write(lines.length ? `${lines.join("\n")}\n` : "");
      ctx.dispose();
      return 0;
    }),
};
