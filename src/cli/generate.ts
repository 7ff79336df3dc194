// repo-llama generate: continues a prompt with the model, streaming the text as it is produced.
import type { CliCommand } from "./commands";
import { kvArgOptions, kvContextOptions, kvUsage, loadModel, numberOption, parseCommandArgs, runCommand, UsageError } from "./model-args";

const usage = `usage: repo-llama generate --model M --prompt P [-n N] [--temperature T] [--seed S]

Streams the model's continuation of P to stdout (P may contain <|...|> control tokens; the
beginning-of-text token is added). Ctrl-C stops after the current token.
  -n N             tokens to generate at most (default 128)
  --temperature T  0 is greedy (default 0.8)
  --top-k K        default 40 (0: whole vocabulary)
  --top-p P        default 0.95
  --seed S         draws are reproducible for a seed (default 0)
  --threads N      engine threads (0: all cores)
${kvUsage}`;

export const generateCommand: CliCommand = {
  summary: "continue a prompt with the model, streaming the text",
  run: (args) =>
    runCommand("generate", usage, async () => {
      const v = parseCommandArgs(args, {
        model: { type: "string" },
        prompt: { type: "string" },
        n: { type: "string", short: "n" },
        temperature: { type: "string" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        seed: { type: "string" },
        threads: { type: "string" },
        ...kvArgOptions,
      });
      if (v.prompt === undefined) throw new UsageError("--prompt P is required");
      const maxTokens = numberOption("n", v.n, 128);
      const kv = kvContextOptions(v);
      const sampling = {
        temperature: numberOption("temperature", v.temperature, 0.8),
        topK: numberOption("top-k", v["top-k"], 40),
        topP: numberOption("top-p", v["top-p"], 0.95),
        seed: numberOption("seed", v.seed, 0),
      };
      const model = await loadModel(v.model, v.threads, v.device);
      const prompt = await model.tokenize(v.prompt, true, true);
      const ctx = model.createContext({ nCtx: Math.min(model.info.nCtxTrain, prompt.length + maxTokens), ...kv });
      const stop = () => ctx.cancel();
      process.once("SIGINT", stop);
      try {
        await ctx.prefill(prompt);
        const result = await ctx.generate({ maxTokens, sampling }, (text) => process.stdout.write(text));
        process.stdout.write("\n");
        const s = result.stats;
        process.stderr.write(
          `[${s.generatedTokens} tokens, ${s.tokensPerSecond.toFixed(2)} tok/s, stop: ${result.stopReason}]\n`,
        );
      } finally {
        process.off("SIGINT", stop);
        ctx.dispose();
      }
      return 0;
    }),
};
