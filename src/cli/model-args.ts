// Shared pieces of the engine commands (tokenize, eval, generate): option parsing and model loading.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadAddon, type ContextOptions, type DeviceChoice, type KvMode, type Model } from "../engine/addon";

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

const devices: DeviceChoice[] = ["auto", "cpu", "cuda"];

/**
 * Loads the model on --device (auto: CUDA when the addon has it and a GPU is present). A "cuda" request
 * that cannot be honoured runs on the CPU; the one line saying why goes to stderr.
 */
export async function loadModel(modelPath: string | undefined, threads: string | undefined, device?: string): Promise<Model> {
  if (!modelPath) throw new UsageError("--model PATH (a GGUF file) is required");
  if (device !== undefined && !devices.includes(device as DeviceChoice)) {
    throw new UsageError(`--device must be auto, cpu or cuda, got "${device}"`);
  }
  const addon = loadAddon();
  const model = await addon.Model.load(modelPath, { threads: numberOption("threads", threads, 0), device: (device ?? "auto") as DeviceChoice });
  if (model.info.deviceNote) process.stderr.write(`repo-llama: ${model.info.deviceNote}\n`);
  return model;
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

/** The KV cache and device options every engine command takes. */
export const kvArgOptions = {
  kv: { type: "string" },
  "kv-top-p": { type: "string" },
  sinks: { type: "string" },
  recent: { type: "string" },
  "kv-cap": { type: "string" },
  device: { type: "string" },
} as const;

export const kvUsage = `  --kv MODE        KV cache: f32 (default) or f16 keep every key and value; 50%, 25%, 12.5% are
                   HCAttention budgets (fast tier relative to f16 K+V)
  --kv-top-p P     attention mass the HCAttention selection keeps (default 0.995)
  --sinks N        first tokens always attended (default 4)
  --recent N       last tokens always attended (default 64)
  --kv-cap N       most tokens the HCAttention cache holds (default: all); past it the least-attended
                   ones are evicted for good
  --device D       auto (default: CUDA when built in and a GPU is present), cpu or cuda (without a
                   usable GPU it runs on the CPU and says why)
`;

const budgets: KvMode[] = ["50%", "25%", "12.5%"];

/** Context options for the parsed --kv, --kv-top-p, --sinks, --recent and --kv-cap values. */
export function kvContextOptions(v: {
  kv?: string;
  "kv-top-p"?: string;
  sinks?: string;
  recent?: string;
  "kv-cap"?: string;
}): Pick<ContextOptions, "kvType" | "kv"> {
  const mode = v.kv ?? "f32";
  if (mode === "f32" || mode === "full" || mode === "f16") {
    if (v["kv-top-p"] !== undefined || v.sinks !== undefined || v.recent !== undefined || v["kv-cap"] !== undefined) {
      throw new UsageError("--kv-top-p, --sinks, --recent and --kv-cap apply to the HCAttention budgets (--kv 50%|25%|12.5%)");
    }
    return { kvType: mode === "f16" ? "f16" : "f32" };
  }
  if (!budgets.includes(mode as KvMode)) throw new UsageError(`--kv must be f32, f16, 50%, 25% or 12.5%, got "${mode}"`);
  return {
    kv: {
      mode: mode as KvMode,
      ...(v["kv-top-p"] !== undefined && { topP: numberOption("kv-top-p", v["kv-top-p"], 0) }),
      ...(v.sinks !== undefined && { sinks: numberOption("sinks", v.sinks, 0) }),
      ...(v.recent !== undefined && { recent: numberOption("recent", v.recent, 0) }),
      ...(v["kv-cap"] !== undefined && { valueCap: numberOption("kv-cap", v["kv-cap"], 0) }),
    },
  };
}
