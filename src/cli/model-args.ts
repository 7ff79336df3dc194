// Shared pieces of the engine commands (tokenize, eval, generate): option parsing and model loading.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadAddon, type Model } from "../engine/addon";

/** Thrown for bad command lines; the command prints the message and its usage and exits with 2. */
export class UsageError extends Error {}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got "${value}"`);
  return n;
}

export async function loadModel(modelPath: string | undefined, threads: string | undefined): Promise<Model> {
  if (!modelPath) throw new UsageError("--model PATH (a GGUF file) is required");
  const addon = loadAddon();
  return addon.Model.load(modelPath, { threads: numberOption("threads", threads, 0) });
}

/** Runs a command body, turning UsageError into usage output (exit 2) and other errors into a message (exit 1). */
export async function runCommand(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`repo-llama ${name}: ${error.message}\n\n${usage}`);
      return 2;
    }
    process.stderr.write(`repo-llama ${name}: ${(error as Error).message}\n`);
    return 1;
  }
}
