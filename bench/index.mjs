// npm run bench -- index [DIR] [--runs N] [--max-file-kb N]
// Indexes a real corpus (default: the installed node_modules/typescript) several times with the CLI's default
// options and reports medians: files/s, MB/s and estimated tokens/s. The anchor is the floor under any indexer:
// reading the same files and nothing else. Goal (issue 2): 1M estimated tokens in under 2 s on a 2-core machine.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadIndexer, repoRoot } from "../test/unit/support/indexer.mjs";

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

export async function main(args) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { runs: { type: "string", default: "7" }, "max-file-kb": { type: "string" } },
  });
  const corpus = resolve(positionals[0] ?? join(repoRoot, "node_modules", "typescript"));
  const runs = Math.max(1, Number(values.runs));
  const { indexer } = await loadIndexer();
  const options = { ...indexer.defaultIndexOptions };
  if (values["max-file-kb"]) options.maxFileKB = Number(values["max-file-kb"]);

  // CPU time next to wall time: on a busy machine the wall clock also counts waiting for a core.
  const times = [];
  const cpuTimes = [];
  let result;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    result = await indexer.indexWorkspace(corpus, options);
    const cpu = process.cpuUsage(cpuStarted);
    times.push(performance.now() - started);
    cpuTimes.push((cpu.user + cpu.system) / 1000);
  }
  const floorTimes = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    for (const file of result.files) readFileSync(join(corpus, file.path));
    floorTimes.push(performance.now() - started);
  }

  const { files, bytes, estimatedTokens, skipped } = result.stats;
  const ms = median(times);
  const floorMs = median(floorTimes);
  const perSecond = (count) => Math.round(count / (ms / 1000));
  const report = {
    corpus,
    options: { maxFileKB: options.maxFileKB },
    runs,
    files,
    bytes,
    estimatedTokens,
    skipped,
    firstRunMs: Math.round(times[0]),
    medianMs: Math.round(ms),
    medianCpuMs: Math.round(median(cpuTimes)),
    filesPerSecond: perSecond(files),
    mbPerSecond: Number((bytes / 1e6 / (ms / 1000)).toFixed(1)),
    estimatedTokensPerSecond: perSecond(estimatedTokens),
    secondsPerMillionTokens: Number((ms / 1000 / (estimatedTokens / 1e6)).toFixed(3)),
    goal: "1M estimated tokens in under 2 s",
    anchor: { what: "reading the indexed files only", medianMs: Math.round(floorMs), oursOverAnchor: Number((ms / floorMs).toFixed(2)) },
    machine: { cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism(), loadAverage: loadavg()[0], node: process.version },
    date: new Date().toISOString(),
  };

  console.log(`corpus   ${corpus} (max file ${options.maxFileKB} KiB)`);
  console.log(`indexed  ${files} files, ${(bytes / 1e6).toFixed(2)} MB, ~${estimatedTokens} estimated tokens; skipped ${JSON.stringify(skipped)}`);
  console.log(`time     median ${report.medianMs} ms over ${runs} runs (first ${report.firstRunMs} ms), CPU ${report.medianCpuMs} ms`);
  console.log(`speed    ${report.filesPerSecond} files/s, ${report.mbPerSecond} MB/s, ${report.estimatedTokensPerSecond} estimated tokens/s`);
  console.log(`goal     ${report.secondsPerMillionTokens} s per 1M tokens (goal < 2 s): ${report.secondsPerMillionTokens < 2 ? "met" : "NOT met"}`);
  console.log(`anchor   reading the same files only: ${report.anchor.medianMs} ms; ours/anchor ${report.anchor.oursOverAnchor}`);

  const out = join(repoRoot, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "index.json"), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote    ${join(out, "index.json")}`);
  return 0;
}
