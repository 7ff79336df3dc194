// repo-llama tokenize: a text or file as the model's token ids (a JSON array), through the engine.
import { readFile } from "node:fs/promises";
import type { CliCommand } from "./commands";
import { loadModel, parseCommandArgs, runCommand, UsageError } from "./model-args";

const usage = `usage: repo-llama tokenize --model M (--file F | --text T) [--bos] [--special]

Prints the token ids of the text as a JSON array.
  --bos       prepend the beginning-of-text token
  --special   recognise <|...|> control tokens in the text (otherwise they are plain text)
  --threads N engine threads (0: all cores)
`;

export const tokenizeCommand: CliCommand = {
  summary: "print the token ids of a text or file as a JSON array",
  run: (args) =>
    runCommand("tokenize", usage, async () => {
      const v = parseCommandArgs(args, {
        model: { type: "string" },
        file: { type: "string" },
        text: { type: "string" },
        bos: { type: "boolean", default: false },
        special: { type: "boolean", default: false },
        threads: { type: "string" },
      });
      if ((v.file === undefined) === (v.text === undefined)) throw new UsageError("give exactly one of --file F or --text T");
      const text = v.text ?? (await readFile(v.file as string));
      const model = await loadModel(v.model, v.threads);
      const ids = await model.tokenize(text, v.bos, v.special);
      process.stdout.write(`${JSON.stringify(Array.from(ids))}\n`);
      return 0;
    }),
};
