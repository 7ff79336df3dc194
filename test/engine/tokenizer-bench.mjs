// Tokenizer speed, ours against llama.cpp's (node-llama-cpp), on the same text. Not a test:
//   node test/engine/tokenizer-bench.mjs [--rounds N] [FILE|PACKAGE ...]
// (default: every text file of node_modules/typescript). Rounds alternate the two tokenizers; the
// report gives medians of wall-clock MB/s and of MB per CPU second (the latter is steadier on a busy
// machine), plus the ratio.
import { readFileSync, statSync } from "node:fs";
import { corpusOf, loadAddon, openOracle, tokenizerGguf } from "./tokenizer-harness.mjs";

const args = process.argv.slice(2);
let rounds = 3;
const sources = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--rounds") rounds = Number(args[++i]);
  else sources.push(args[i]);
}
if (sources.length === 0) sources.push("typescript");

const texts = [];
for (const s of sources) {
  let isFile = false;
  try {
    isFile = statSync(s).isFile();
  } catch {
    isFile = false;
  }
  if (isFile) texts.push(readFileSync(s));
  else texts.push(...corpusOf(s).map((f) => f.bytes));
}
const strings = texts.map((b) => b.toString("utf8"));
const bytes = texts.reduce((n, b) => n + b.length, 0);
if (bytes === 0) throw new Error(`no text found in ${sources.join(", ")}`);

const gguf = tokenizerGguf();
const { Tokenizer } = loadAddon();
const ours = await Tokenizer.load(gguf);
const oracle = await openOracle(gguf);

function measure(run) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < strings.length; i++) tokens += run(i);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6, tokens };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { ours: [], llama: [] };
for (let r = 0; r < rounds; r++) {
  results.ours.push(measure((i) => ours.encode(texts[i], false, false).length));
  results.llama.push(measure((i) => oracle.tokenize(strings[i], false).length));
}
await oracle.dispose();

const mb = bytes / 1e6;
const summary = {};
for (const [name, runs] of Object.entries(results)) {
  summary[name] = {
    wallMBps: mb / median(runs.map((x) => x.wall)),
    cpuMBps: mb / median(runs.map((x) => x.cpu)),
    tokens: runs[0].tokens,
  };
}
console.log(`${mb.toFixed(1)} MB in ${texts.length} files, ${rounds} alternating rounds`);
for (const [name, s] of Object.entries(summary)) {
  console.log(`${name.padEnd(6)} ${s.wallMBps.toFixed(2).padStart(7)} MB/s wall  ${s.cpuMBps.toFixed(2).padStart(7)} MB/CPU-s  ${s.tokens} tokens`);
}
console.log(`ratio ours/llama.cpp: ${(summary.ours.wallMBps / summary.llama.wallMBps).toFixed(1)}x wall, ${(summary.ours.cpuMBps / summary.llama.cpuMBps).toFixed(1)}x CPU`);
