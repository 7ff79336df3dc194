// Helpers shared by the engine benchmarks (engine.mjs, kv.mjs): medians, the benchmark-shape models, the two
// engines, and measurements that run in a child process of their own.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const benchDir = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(benchDir, "..");
export const resultsDir = join(benchDir, "results");
export const modelDir = join(repoRoot, "build", "bench-models");

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Paths of the named benchmark-shape models, writing the missing ones with the fixture writer. */
export function ensureModels(names) {
  const missing = names.filter((n) => !existsSync(join(modelDir, `${n}.gguf`)));
  if (missing.length) {
    const writer = join(repoRoot, "dist", "fixtures.js");
    if (!existsSync(writer)) throw new Error(`${writer} is missing: run \`npm run build:ts\` first`);
    console.error(`writing ${missing.join(", ")} into ${modelDir} (random weights, several GB; takes minutes)`);
    const r = spawnSync(process.execPath, [writer, modelDir, "--only", missing.join(",")], { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`fixture writer failed (exit ${r.status})`);
  }
  return Object.fromEntries(names.map((n) => [n, join(modelDir, `${n}.gguf`)]));
}

/** Ordinary (non-special) Llama-3 token ids after BOS, the same sequence for every engine and run. */
export function ordinaryTokens(n) {
  let s = 12345;
  const ids = [128000];
  while (ids.length < n) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    ids.push(1000 + (s % 100000));
  }
  return ids.slice(0, n);
}

/** Our engine addon: HCATTN_ADDON, else the bundled copy in dist/, else the cmake-js build. */
export function loadOurEngine() {
  const candidates = [process.env.HCATTN_ADDON, join(repoRoot, "dist", "hcattn.node"), join(repoRoot, "build", "native", "Release", "hcattn.node")];
  const addonPath = candidates.filter(Boolean).find((p) => existsSync(p));
  if (!addonPath) throw new Error("hcattn.node not found: run `npm run build`");
  return createRequire(import.meta.url)(addonPath);
}

/** llama.cpp through node-llama-cpp's prebuilt CPU binaries; never downloads or builds anything. */
export async function loadLlamaCpp() {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  return getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
}

/**
 * Runs `script --child ...args` in a fresh Node process and returns the JSON object on the last line of its
 * stdout; the child adds its peak RSS. Its stderr (progress of long measurements, errors) passes through.
 * `what` names the measurement in the error when the child fails.
 */
export function runChild(script, args, what) {
  const r = spawnSync(process.execPath, [script, "--child", ...args.map(String)], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status ?? r.signal}; its error is printed above)`);
  const line = r.stdout.trim().split("\n").pop();
  return JSON.parse(line);
}

/** The child side of runChild: prints the measurement with the process's peak resident set. */
export async function reportFromChild(measure) {
  try {
    const m = await measure();
    m.peakRssMB = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(`${JSON.stringify(m)}\n`);
  } catch (error) {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exit(1);
  }
}

export function machineInfo() {
  return { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, loadavg: loadavg() };
}

export const escapeSvg = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
