// npm run bench -- kv [--json] [--reps N] [--threads N] [--context N] [--decode N] [--tokens N] [--parts a,b]
//                     [--llama-kv f16,q4_0] [--out NAME]
// HCAttention side by side with llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU build), in one run:
//   decode:   tokens/s of greedy steps after a --context-token prompt (default 8192) on the Llama-3.2-1B shape
//             (Q8_0, random weights), --threads threads (default 2): ours with the full f16 cache and at each
//             HCAttention budget, llama.cpp with an F16 KV cache and with a Q4_0 K+V cache, both with flash
//             attention on (llama.cpp needs it for a quantized V cache, and it is its faster path at 8k);
//             --llama-kv picks the llama.cpp caches (its Q4_0 8k prefill takes ≈15 min on 2 quiet cores, once).
//             Goals (issue 4): ours at 25% ≥ 2.0× llama.cpp F16 and ≥ 1.5× llama.cpp Q4_0.
//             Ours also reports the share of cached tokens its selection kept (the decode cost of a budget
//             follows it; llama.cpp's does not depend on the weights) and the share of dense steps (a KV head
//             whose selection kept ≥ 90% attends exactly to every token for its next 15 steps, without
//             scoring, and 15 more while the last one's exact scores still keep ≥ 90%); "ours 25% every step"
//             turns dense steps off, so that every step scores and selects.
//   decode-sharp: the same on llama32-1b-sharp-q8_0, the same shape with attention logits spread about
//             4× wider: random weights otherwise give near-flat attention (each token's weight ≈ 1/n),
//             where top-p keeps almost every token, unlike the peaked attention of trained models.
//   memory:   fast-tier bytes per token, measured by ctx.kvMemory() in the same 8k contexts, next to llama.cpp's
//             F16 / Q8_0 / Q4_0 caches, computed from the ggml type sizes (and cross-checked against the size
//             of llama.cpp's saved sequence state for the two types it ran).
//   million:  a --tokens prefill (default 1,000,000) of tiny-hd128-long-q8_0 (tiny-hd128-q8_0 with a 2M-token
//             training context) at 25% with star-attention blocks:
//             wall time, tokens/s, peak RSS, snapshot size, and reload time vs re-prefill time (goal ≥ 50×), reloading
//             with keys and values copied into RAM and served from the mapped file (mapSnapshot).
//   million-capped: the same prefill holding at most 262,144 tokens (kv valueCap: the least-attended are
//             evicted for good): what the cap saves in peak RSS, snapshot size and reload time, and costs in prefill.
//   fidelity: budget × next-token top-1 agreement with the full cache and mean KL on stories260K, from the
//             native test test_kv_fidelity (4 self-sampled sequences, one token at a time; its output parsed).
// Only decode is measured at 8k: both engines prefill the 8k prompt once and keep it (ours as a .hckv
// snapshot prefilled with star blocks; llama.cpp as its saved sequence state) in build/bench-models/kv-states,
// and every repeat loads that and decodes. Ours "full" has no snapshot: it prefills, and runs in the first
// repeat only.
// Every measurement runs in a fresh child process; configurations rotate order per repeat; medians.
// --parts runs some of the parts (decode,decode-sharp,memory,million,million-capped,fidelity; million-capped only
// when named); the others are kept from the previous
// kv.json, each part with the date and load average of its own run.
// Results: bench/results/kv.json and bench/results/kv.svg (--out NAME: NAME.json and NAME.svg).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  ensureModels,
  escapeSvg,
  loadLlamaCpp,
  loadOurEngine,
  machineInfo,
  median,
  modelDir,
  ordinaryTokens,
  repoRoot,
  reportFromChild,
  resultsDir,
  runChild,
} from "./lib.mjs";

const script = fileURLToPath(import.meta.url);
const DECODE_MODELS = { decode: "llama32-1b-q8_0", "decode-sharp": "llama32-1b-sharp-q8_0" };
const BUDGETS = ["50%", "25%", "12.5%"];
const LLAMA_CPP_KV = ["f16", "q4_0"];
/** Star-attention block of the prefills (ours): linear prefill cost; decode always uses the global selection. */
const STAR_BLOCK = 2048;
const PREFILL_BATCH = 512;
const MILLION_CHUNK = 4096;
/** tiny-hd128-q8_0's weights with a 2M-position training context, so that 1M positions stay inside it. */
const MILLION_MODEL = "tiny-hd128-long-q8_0";
/** million-capped: the tokens the million-token context holds (a quarter), evicting the least-attended. */
const MILLION_CAP = 262_144;
const stateDir = join(modelDir, "kv-states");
/** ggml block sizes: bytes per element of each llama.cpp KV cache type. */
const GGML_BYTES_PER_ELEMENT = { f16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };

/** "ours 25% every step": dense decode steps off (denseShare 0), so that every step scores and selects. */
const configName = (c) => `${c.engine} ${c.kv}${c.everyStep ? " every step" : ""}`;
/** Names the saved 8k states: a changed prompt never loads a state prefilled from another. */
const promptHash = (prompt) => createHash("sha256").update(Int32Array.from(prompt)).digest("hex").slice(0, 12);

// ---- children ----

/** A saved 8k state's file name: engine, model, cache type, prompt; a changed prompt never loads another's state. */
const stateFile = (engine, modelPath, kv, prompt, suffix) =>
  join(stateDir, `${engine}-${basename(modelPath, ".gguf")}-${kv.replace("%", "pct")}-${prompt.length}-${promptHash(prompt)}${suffix}`);

async function decodeOurs(kv, modelPath, threads, contextTokens, decodeTokens, everyStep) {
  const engine = loadOurEngine();
  const prompt = ordinaryTokens(contextTokens);
  const model = await engine.Model.load(modelPath, { threads });
  const nCtx = contextTokens + decodeTokens + 8;
  const options =
    kv === "full"
      ? { nCtx, nBatch: PREFILL_BATCH, kvType: "f16" }
      : { nCtx, nBatch: PREFILL_BATCH, kv: { mode: kv, starBlock: STAR_BLOCK, ...(everyStep ? { denseShare: 0 } : {}) } };
  const state = stateFile("ours", modelPath, kv, prompt, `-star${STAR_BLOCK}.hckv`);
  let ctx;
  let prefillSeconds = null;
  let stateLoadSeconds = null;
  if (kv !== "full" && existsSync(state)) {
    const t = performance.now();
    try {
      ctx = (await model.loadContext(state, options, -1)).context;
      stateLoadSeconds = (performance.now() - t) / 1000;
    } catch (error) {
      // Saved by an engine with other defaults or format: prefilled and saved again below.
      process.stderr.write(`${state} not usable (${error.message}); prefilling again\n`);
      rmSync(state, { force: true });
    }
  }
  if (!ctx) {
    ctx = model.createContext(options);
    const t = performance.now();
    await ctx.prefill(prompt.slice(0, -1));
    prefillSeconds = (performance.now() - t) / 1000;
    if (kv !== "full") {
      mkdirSync(stateDir, { recursive: true });
      await ctx.saveSnapshot(state, []);
    }
  }
  const memory = ctx.kvMemory();
  await ctx.prefill(prompt.slice(-1));
  // generate samples decodeTokens + 1 tokens and runs a forward step for all but the last.
  const r = await ctx.generate({ maxTokens: decodeTokens + 1, sampling: { temperature: 0 }, stopTokens: [] });
  const steps = Math.max(1, r.tokens.length - 1);
  // Read after decoding: the share of the cache the selection kept over these steps.
  const { selectedShare = null, denseStepShare = null } = ctx.kvMemory();
  return { decodeTokPerS: steps / r.stats.seconds, decodeSteps: steps, prefillSeconds, stateLoadSeconds, memory, selectedShare, denseStepShare };
}

async function decodeLlamaCpp(kv, modelPath, threads, contextTokens, decodeTokens) {
  const llama = await loadLlamaCpp();
  const prompt = ordinaryTokens(contextTokens);
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const types = kv === "q4_0" ? { experimentalKvCacheKeyType: "Q4_0", experimentalKvCacheValueType: "Q4_0" } : {};
  const context = await model.createContext({
    contextSize: contextTokens + decodeTokens + 8,
    batchSize: PREFILL_BATCH,
    threads,
    sequences: 1,
    flashAttention: true,
    ...types,
  });
  const sequence = context.getSequence();
  const state = stateFile("llamacpp", modelPath, kv, prompt, ".state");
  let prefillSeconds = null;
  let stateLoadSeconds = null;
  if (existsSync(state)) {
    const t = performance.now();
    await sequence.loadStateFromFile(state, { acceptRisk: true });
    stateLoadSeconds = (performance.now() - t) / 1000;
  } else {
    const t = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
    prefillSeconds = (performance.now() - t) / 1000;
    mkdirSync(stateDir, { recursive: true });
    await sequence.saveStateToFile(state);
  }
  const stateBytes = statSync(state).size;
  let steps = 0;
  const t = performance.now();
  for await (const token of sequence.evaluate(prompt.slice(-1), { temperature: 0 })) {
    void token;
    if (++steps >= decodeTokens) break;
  }
  const decodeSeconds = (performance.now() - t) / 1000;
  return { decodeTokPerS: steps / decodeSeconds, decodeSteps: steps, prefillSeconds, stateLoadSeconds, stateBytes };
}

/**
 * tiny-hd128 at 25% with star blocks: prefill `tokens` (holding at most `cap` of them when cap > 0), check the
 * next logits are finite, save the snapshot.
 */
async function millionPrefill(modelPath, tokens, threads, snapshot, cap) {
  const engine = loadOurEngine();
  const model = await engine.Model.load(modelPath, { threads });
  const options = { nCtx: tokens + 8, nBatch: MILLION_CHUNK, kv: { mode: "25%", starBlock: STAR_BLOCK, ...(cap > 0 ? { valueCap: cap } : {}) } };
  const ctx = model.createContext(options);
  const ids = Int32Array.from(ordinaryTokens(tokens));
  let reported = 0;
  const t = performance.now();
  const r = await ctx.prefill(ids, (p) => {
    if (p.done - reported >= tokens / 10 || p.done === p.total) {
      reported = p.done;
      process.stderr.write(`  million: ${p.done}/${p.total} tokens, ${p.tokensPerSecond.toFixed(0)} tok/s\n`);
    }
  });
  const prefillSeconds = (performance.now() - t) / 1000;
  const rssAfterPrefillMB = process.memoryUsage().rss / 2 ** 20;
  const memory = ctx.kvMemory();
  const next = await ctx.evalLogits([ids[1]], 1, { full: true });
  const finite = next.logprobs.every(Number.isFinite);
  ctx.truncate(tokens);
  const s = performance.now();
  await ctx.saveSnapshot(snapshot, []);
  const saveSeconds = (performance.now() - s) / 1000;
  return { tokens: r.evaluated, prefillSeconds, prefillTokPerS: r.evaluated / prefillSeconds, rssAfterPrefillMB, memory, finite, saveSeconds, snapshotBytes: statSync(snapshot).size };
}

async function millionLoad(modelPath, tokens, threads, snapshot, mapped, cap) {
  const engine = loadOurEngine();
  const model = await engine.Model.load(modelPath, { threads });
  const options = {
    nCtx: tokens + 8,
    nBatch: MILLION_CHUNK,
    kv: { mode: "25%", starBlock: STAR_BLOCK, ...(cap > 0 ? { valueCap: cap } : {}) },
    mapSnapshot: mapped,
  };
  const t = performance.now();
  const { context } = await model.loadContext(snapshot, options, -1);
  const loadSeconds = (performance.now() - t) / 1000;
  const loadedTokens = context.nPast;
  const next = await context.evalLogits([ordinaryTokens(2)[1]], 1, { full: true });
  return { loadSeconds, tokens: loadedTokens, finite: next.logprobs.every(Number.isFinite) };
}

async function child(kind, args) {
  if (kind === "decode") {
    const [engineName, kv, modelPath, threads, contextTokens, decodeTokens, everyStep] = args;
    const run = engineName === "ours" ? decodeOurs : decodeLlamaCpp;
    return run(kv, modelPath, Number(threads), Number(contextTokens), Number(decodeTokens), everyStep === "every-step");
  }
  const [modelPath, tokens, threads, snapshot, cap] = args;
  if (kind === "million-prefill") return millionPrefill(modelPath, Number(tokens), Number(threads), snapshot, Number(cap));
  if (kind === "million-load") return millionLoad(modelPath, Number(tokens), Number(threads), snapshot, args[5] === "mapped", Number(cap));
  throw new Error(`unknown child measurement ${kind}`);
}

// ---- parts ----

function decodePart({ model, reps, threads, contextTokens, decodeTokens, llamaKv, log }) {
  const modelPath = ensureModels([model])[model];
  const configs = [
    ...["full", ...BUDGETS].map((kv) => ({ engine: "ours", kv })),
    { engine: "ours", kv: "25%", everyStep: true },
    ...llamaKv.map((kv) => ({ engine: "llama.cpp", kv })),
  ];
  const ourBudgets = configs.filter((c) => c.engine === "ours" && c.kv !== "full").map(configName);
  const runs = Object.fromEntries(configs.map((c) => [configName(c), []]));
  for (let rep = 0; rep < reps; rep++) {
    // Rotate the order so that no configuration always runs first (warmest page cache) or last.
    const order = configs.map((_, i) => configs[(i + rep) % configs.length]);
    for (const c of order) {
      // Without a snapshot, ours "full" prefills 8k tokens in every child: measured in the first repeat only.
      if (c.kv === "full" && rep > 0) continue;
      const args = ["decode", c.engine, c.kv, modelPath, threads, contextTokens, decodeTokens, c.everyStep ? "every-step" : "dense"];
      const m = runChild(script, args, `decode ${configName(c)}`);
      runs[configName(c)].push(m);
      const how = m.prefillSeconds !== null ? `prefilled in ${m.prefillSeconds.toFixed(1)} s` : `state loaded in ${m.stateLoadSeconds.toFixed(2)} s`;
      const kept = m.selectedShare !== null && m.selectedShare !== undefined ? `, kept ${(100 * m.selectedShare).toFixed(1)}% of tokens` : "";
      const dense = m.denseStepShare !== null && m.denseStepShare !== undefined ? `, ${(100 * m.denseStepShare).toFixed(0)}% dense steps` : "";
      log(`${model} rep ${rep + 1}/${reps} ${configName(c).padEnd(20)} ${m.decodeTokPerS.toFixed(2)} tok/s (${how}${kept}${dense}, peak RSS ${m.peakRssMB.toFixed(0)} MB)`);
    }
  }
  const medians = Object.fromEntries(Object.entries(runs).map(([name, list]) => [name, median(list.map((m) => m.decodeTokPerS))]));
  const medianOf = (name, key) => median(runs[name].map((m) => m[key]).filter((x) => x !== null && x !== undefined));
  const selectedShare = Object.fromEntries(ourBudgets.map((name) => [name, medianOf(name, "selectedShare")]));
  const denseStepShare = Object.fromEntries(ourBudgets.map((name) => [name, medianOf(name, "denseStepShare")]));
  const ratios = {};
  for (const name of ["ours full", ...ourBudgets]) {
    for (const type of llamaKv) ratios[`${name} / llama.cpp ${type}`] = medians[name] / medians[`llama.cpp ${type}`];
  }
  return { model, contextTokens, decodeTokens, threads, starBlock: STAR_BLOCK, tokPerS: medians, ratios, selectedShare, denseStepShare, runs };
}

/** Fast-tier bytes per token: ours measured in the decode part's 8k contexts, llama.cpp's from its type sizes. */
function memoryPart(decode) {
  const ours = {};
  let f16BytesPerToken = 0;
  for (const kv of ["full", ...BUDGETS]) {
    const m = decode.runs[`ours ${kv}`][0].memory;
    f16BytesPerToken = m.f16BytesPerToken;
    ours[kv] = {
      fastBytesPerToken: m.fastBytes / m.tokens,
      hostBytesPerToken: m.hostBytes / m.tokens,
      fastPercentOfF16: (100 * m.fastBytes) / m.tokens / m.f16BytesPerToken,
      tokens: m.tokens,
    };
  }
  // Elements of K+V per token: f16BytesPerToken is 2 bytes each.
  const elements = f16BytesPerToken / 2;
  const llamaCpp = {};
  for (const [type, bytes] of Object.entries(GGML_BYTES_PER_ELEMENT)) {
    llamaCpp[type] = { bytesPerToken: elements * bytes, percentOfF16: (100 * bytes) / 2, source: "computed from ggml type sizes" };
  }
  for (const type of LLAMA_CPP_KV) {
    const m = decode.runs[`llama.cpp ${type}`]?.[0];
    if (!m) continue;
    llamaCpp[type].savedStateBytesPerToken = m.stateBytes / (decode.contextTokens - 1);
  }
  return { model: decode.model, f16BytesPerToken, ours, llamaCpp };
}

/** The million part; with cap > 0 (million-capped) the context holds at most `cap` tokens, evicting the least-attended. */
function millionPart({ tokens, threads, log }, cap = 0) {
  const modelPath = ensureModels([MILLION_MODEL])[MILLION_MODEL];
  const dir = join(tmpdir(), `repo-llama-bench-kv-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const snapshot = join(dir, "million.hckv");
  const name = cap > 0 ? "million-capped" : "million";
  try {
    log(`${name}: prefilling ${tokens} tokens of ${MILLION_MODEL} at 25% (star blocks of ${STAR_BLOCK}, chunks of ${MILLION_CHUNK})` + (cap > 0 ? `, holding at most ${cap}` : ""));
    const prefill = runChild(script, ["million-prefill", modelPath, tokens, threads, snapshot, cap], "million-token prefill");
    log(`${name}: ${prefill.prefillSeconds.toFixed(1)} s (${prefill.prefillTokPerS.toFixed(0)} tok/s), peak RSS ${prefill.peakRssMB.toFixed(0)} MB, snapshot ${(prefill.snapshotBytes / 2 ** 20).toFixed(0)} MiB` + (cap > 0 ? `, ${prefill.memory.evictedTokens} tokens evicted` : ""));
    // Reloads copying keys and values into RAM, and serving them from the mapped file (mapSnapshot).
    const reload = (how) => {
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(runChild(script, ["million-load", modelPath, tokens, threads, snapshot, cap, how], `million-token snapshot load (${how})`));
      return runs;
    };
    const loads = reload("copied");
    const mappedLoads = reload("mapped");
    const loadSeconds = median(loads.map((l) => l.loadSeconds));
    const mappedSeconds = median(mappedLoads.map((l) => l.loadSeconds));
    log(`${name}: reload ${loadSeconds.toFixed(3)} s copied, ${mappedSeconds.toFixed(3)} s mapped (medians of 3, page cache warm)`);
    return {
      model: MILLION_MODEL,
      kv: "25%",
      ...(cap > 0 ? { valueCap: cap, evictedTokens: prefill.memory.evictedTokens } : {}),
      starBlock: STAR_BLOCK,
      chunk: MILLION_CHUNK,
      tokens: prefill.tokens,
      prefillSeconds: prefill.prefillSeconds,
      prefillTokPerS: prefill.prefillTokPerS,
      peakRssMB: prefill.peakRssMB,
      fastBytesPerToken: prefill.memory.fastBytes / prefill.memory.tokens,
      hostBytesPerToken: prefill.memory.hostBytes / prefill.memory.tokens,
      finiteLogitsAfterPrefill: prefill.finite && [...loads, ...mappedLoads].every((l) => l.finite),
      snapshotBytes: prefill.snapshotBytes,
      saveSeconds: prefill.saveSeconds,
      reloadSeconds: loadSeconds,
      reloadRuns: loads.map((l) => l.loadSeconds),
      reprefillOverReload: prefill.prefillSeconds / loadSeconds,
      reloadMappedSeconds: mappedSeconds,
      reloadMappedRuns: mappedLoads.map((l) => l.loadSeconds),
      reprefillOverMappedReload: prefill.prefillSeconds / mappedSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fidelityPart({ log }) {
  const candidates = [join(repoRoot, "build", "native", "test_kv_fidelity"), join(repoRoot, "build", "native", "Release", "test_kv_fidelity")];
  const binary = candidates.find((p) => existsSync(p));
  if (!binary) throw new Error(`test_kv_fidelity not found (looked in ${candidates.join(", ")}): run \`npm run build:native\``);
  const r = spawnSync(binary, [], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, HCATTN_TEST_DATA: join(repoRoot, "build", "test-data") },
  });
  if (r.status === 77) throw new Error(`test_kv_fidelity skipped: ${r.stdout.trim()}`);
  const rows = [];
  // One row per budget, codebook source and size, e.g.
  // "stories260K 25%   workspace codebooks, 1024 centroids: top-1 agreement …".
  // "…, 256 centroids, dense steps: …" is the engine's default of dense decode steps (the others select at every step);
  // "…, value cap 384 (mean-mass): …" holds at most 384 positions, evicting in that order.
  const row =
    /stories260K (\S+)\s+(\w+)\s+codebooks,\s+(\d+) centroids(, dense steps)?(?:, value cap (\d+) \(([\w-]+)\))?: top-1 agreement with full ([\d.]+)% \((\d+)\/(\d+) positions\), mean KL ([\d.e+-]+)/g;
  for (const m of r.stdout.matchAll(row)) {
    const cap = m[5] ? `cap ${m[5]} ${m[6]}` : "";
    const kv = [m[1], m[2] !== "workspace" ? m[2] : "", m[3] !== "1024" ? `c=${m[3]}` : "", m[4] ? "dense" : "", cap].filter(Boolean).join(" ");
    rows.push({
      kv,
      codebooks: m[2],
      centroids: Number(m[3]),
      denseSteps: Boolean(m[4]),
      ...(m[5] ? { valueCap: Number(m[5]), eviction: m[6] } : {}),
      top1AgreementPercent: Number(m[7]),
      agree: Number(m[8]),
      positions: Number(m[9]),
      meanKl: Number(m[10]),
    });
  }
  if (rows.length === 0) throw new Error(`test_kv_fidelity printed no fidelity rows (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  for (const row of rows) log(`fidelity ${row.kv.padEnd(5)} top-1 ${row.top1AgreementPercent.toFixed(2)}%  mean KL ${row.meanKl.toExponential(2)}`);
  return {
    source: `${binary} (native/tests/test_kv_fidelity.cpp: 4 sequences sampled by the model, 512 positions each, decoded one token at a time; recent 16, sinks 4, calibration 128, 1024 centroids unless the row says c=256, the engine's default; every decode step selects unless the row says dense: the engine's default dense steps; a row with cap N holds at most N positions, evicting in the order it names)`,
    testPassed: r.status === 0,
    rows,
  };
}

// ---- report ----

/** "kept 98.2% of tokens, 94% dense steps" for one of our budgets in a decode part ("" for the others). */
function keptText(decode, name, before, after) {
  const kept = decode.selectedShare?.[name], dense = decode.denseStepShare?.[name];
  if (!Number.isFinite(kept)) return "";
  return `${before}kept ${(100 * kept).toFixed(1)}% of tokens` + (Number.isFinite(dense) ? `, ${(100 * dense).toFixed(0)}% dense steps` : "") + after;
}

function chart(report) {
  const rows = [];
  const { memory, fidelity } = report;
  for (const decode of [report.decode, report.decodeSharp].filter(Boolean)) {
    const load = decode.measured ? `, load average ${decode.measured.loadavg[2].toFixed(1)}` : "";
    rows.push({ title: `Decode tok/s at ${decode.contextTokens} tokens, ${decode.model}, ${decode.threads} threads (medians${load})` });
    for (const [name, value] of Object.entries(decode.tokPerS)) {
      const text = `${value.toFixed(2)} tok/s` + keptText(decode, name, " (", ")");
      rows.push({ label: name, value, text, ours: name.startsWith("ours") });
    }
  }
  if (memory) {
    rows.push({ title: "Fast-tier KV bytes per token (ours measured, llama.cpp computed)" });
    for (const [kv, m] of Object.entries(memory.ours)) rows.push({ label: `ours ${kv}`, value: m.fastBytesPerToken, text: `${m.fastBytesPerToken.toFixed(0)} B (${m.fastPercentOfF16.toFixed(1)}% of f16)`, ours: true });
    for (const [type, m] of Object.entries(memory.llamaCpp)) rows.push({ label: `llama.cpp ${type}`, value: m.bytesPerToken, text: `${m.bytesPerToken.toFixed(0)} B (${m.percentOfF16.toFixed(1)}%)`, ours: false });
  }
  if (fidelity) {
    rows.push({ title: "stories260K next-token top-1 agreement with the full cache (%)" });
    for (const r of fidelity.rows) rows.push({ label: `ours ${r.kv}`, value: r.top1AgreementPercent, text: `${r.top1AgreementPercent.toFixed(2)}% (KL ${r.meanKl.toExponential(1)})`, ours: true, scale: 100 });
  }
  // Room for the longest label on the left and for the value texts (up to ~45 characters) on the right.
  const longest = Math.max(0, ...rows.filter((r) => r.label).map((r) => r.label.length));
  const left = Math.max(170, 7 * longest + 20), width = left + 900, barMax = width - left - 330, rowH = 24;
  let y = 30, body = "";
  // Bars are scaled within their group (the rows after a title), percentages against 100.
  let groupMax = 1;
  rows.forEach((r, i) => {
    if (r.title) {
      const next = rows.findIndex((n, j) => j > i && n.title);
      groupMax = Math.max(...rows.slice(i + 1, next < 0 ? rows.length : next).map((n) => n.value));
      y += 14;
      body += `<text x="10" y="${y + 12}" font-weight="bold">${escapeSvg(r.title)}</text>`;
      y += 22;
      return;
    }
    const w = (r.value / (r.scale ?? groupMax)) * barMax;
    body += `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${escapeSvg(r.label)}</text>`;
    body += `<rect x="${left}" y="${y + 2}" width="${w.toFixed(1)}" height="16" fill="${r.ours ? "#3b82f6" : "#9ca3af"}"/>`;
    body += `<text x="${left + w + 6}" y="${y + 14}">${escapeSvg(r.text)}</text>`;
    y += rowH;
  });
  for (const million of [report.million, report.millionCapped].filter(Boolean)) {
    y += 14;
    const held = million.valueCap ? `, holding at most ${million.valueCap.toLocaleString("en-US")} (${million.evictedTokens.toLocaleString("en-US")} evicted)` : "";
    body += `<text x="10" y="${y + 12}" font-weight="bold">${escapeSvg(`${million.tokens.toLocaleString("en-US")}-token prefill, ${million.model}, 25%, star blocks of ${million.starBlock}${held}`)}</text>`;
    const lines = [
      `prefill ${million.prefillSeconds.toFixed(1)} s (${million.prefillTokPerS.toFixed(0)} tok/s), peak RSS ${million.peakRssMB.toFixed(0)} MB` +
        (million.measured ? `, load average ${million.measured.loadavg[2].toFixed(1)}` : ""),
      `snapshot ${(million.snapshotBytes / 2 ** 20).toFixed(0)} MiB, reload ${million.reloadSeconds.toFixed(3)} s: ${million.reprefillOverReload.toFixed(0)}× faster than re-prefill` +
        (million.reloadMappedSeconds ? `; mapped ${million.reloadMappedSeconds.toFixed(3)} s: ${million.reprefillOverMappedReload.toFixed(0)}×` : ""),
    ];
    for (const line of lines) {
      y += 20;
      body += `<text x="20" y="${y + 12}">${escapeSvg(line)}</text>`;
    }
    y += 10;
  }
  const height = y + 30;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="10" y="18" font-size="14" font-weight="bold">HCAttention KV cache vs llama.cpp</text>` +
    `<rect x="330" y="8" width="12" height="12" fill="#3b82f6"/><text x="346" y="18">ours</text>` +
    `<rect x="390" y="8" width="12" height="12" fill="#9ca3af"/><text x="406" y="18">llama.cpp</text>` +
    body +
    `</svg>\n`
  );
}

function printSummary(report, out) {
  const { memory, fidelity } = report;
  for (const decode of [report.decode, report.decodeSharp].filter(Boolean)) {
    console.log(`decode at ${decode.contextTokens} tokens (${decode.model}, ${decode.threads} threads, medians):`);
    for (const [name, v] of Object.entries(decode.tokPerS)) {
      console.log(`  ${name.padEnd(22)} ${v.toFixed(2)} tok/s` + keptText(decode, name, "  ", ""));
    }
    for (const [name, v] of Object.entries(decode.ratios)) console.log(`  ${name.padEnd(38)} ${v.toFixed(2)}×`);
  }
  if (memory) {
    console.log(`fast-tier bytes per token (f16 K+V: ${memory.f16BytesPerToken} B):`);
    for (const [kv, m] of Object.entries(memory.ours)) console.log(`  ours ${kv.padEnd(6)} ${m.fastBytesPerToken.toFixed(1)} B (${m.fastPercentOfF16.toFixed(2)}%), host ${m.hostBytesPerToken.toFixed(1)} B  [measured]`);
    for (const [type, m] of Object.entries(memory.llamaCpp)) console.log(`  llama.cpp ${type.padEnd(5)} ${m.bytesPerToken.toFixed(1)} B (${m.percentOfF16.toFixed(2)}%)  [computed]`);
  }
  for (const million of [report.million, report.millionCapped].filter(Boolean)) {
    const held = million.valueCap ? ` holding at most ${million.valueCap} (${million.evictedTokens} evicted)` : "";
    console.log(
      `${million.tokens}-token prefill${held}: ${million.prefillSeconds.toFixed(1)} s, ${million.prefillTokPerS.toFixed(0)} tok/s, peak RSS ${million.peakRssMB.toFixed(0)} MB, ` +
        `snapshot ${(million.snapshotBytes / 2 ** 20).toFixed(1)} MiB, reload ${million.reloadSeconds.toFixed(3)} s → re-prefill/reload ${million.reprefillOverReload.toFixed(0)}×` +
        (million.reloadMappedSeconds ? `; mapped reload ${million.reloadMappedSeconds.toFixed(3)} s → ${million.reprefillOverMappedReload.toFixed(0)}×` : ""),
    );
  }
  if (fidelity) {
    console.log("fidelity on stories260K:");
    for (const r of fidelity.rows) console.log(`  ${r.kv.padEnd(6)} top-1 ${r.top1AgreementPercent.toFixed(2)}%  mean KL ${r.meanKl.toExponential(2)}`);
  }
  console.log(`results: ${join(resultsDir, `${out}.json`)}, chart: ${join(resultsDir, `${out}.svg`)}`);
}

export async function main(args) {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      reps: { type: "string", default: "3" },
      threads: { type: "string", default: "2" },
      context: { type: "string", default: "8192" },
      decode: { type: "string", default: "16" },
      tokens: { type: "string", default: "1000000" },
      parts: { type: "string", default: "decode,decode-sharp,memory,million,fidelity" },
      "llama-kv": { type: "string", default: LLAMA_CPP_KV.join(",") },
      out: { type: "string", default: "kv" },
    },
  });
  const parts = new Set(values.parts.split(",").filter(Boolean));
  const known = ["decode", "decode-sharp", "memory", "million", "million-capped", "fidelity"];
  const reportKey = { "decode-sharp": "decodeSharp", "million-capped": "millionCapped" };
  for (const p of parts) if (!known.includes(p)) throw new Error(`unknown part "${p}" (known: ${known.join(", ")})`);
  const settings = {
    reps: Math.max(1, Number(values.reps)),
    threads: Number(values.threads),
    contextTokens: Number(values.context),
    decodeTokens: Math.max(1, Number(values.decode)),
    tokens: Number(values.tokens),
    llamaKv: values["llama-kv"].split(",").filter(Boolean),
  };
  for (const t of settings.llamaKv) if (!LLAMA_CPP_KV.includes(t)) throw new Error(`--llama-kv: unknown type "${t}" (known: ${LLAMA_CPP_KV.join(", ")})`);
  const log = (line) => {
    if (!values.json) console.error(line);
  };
  // Each part records when and under what load it ran; parts not run now are kept from the previous
  // results file, so that a long part can be re-run alone on a busy machine (--parts "" redraws the chart).
  const resultsFile = join(resultsDir, `${values.out}.json`);
  const report = { benchmark: "kv", date: new Date().toISOString(), machine: machineInfo(), settings: { ...settings, parts: [...parts] } };
  const stamp = (result) => ({ ...result, measured: { date: new Date().toISOString(), loadavg: loadavg() } });
  if (parts.has("decode") || parts.has("memory")) report.decode = stamp(decodePart({ ...settings, model: DECODE_MODELS.decode, log }));
  if (parts.has("decode-sharp")) report.decodeSharp = stamp(decodePart({ ...settings, model: DECODE_MODELS["decode-sharp"], log }));
  if (parts.has("memory")) report.memory = stamp(memoryPart(report.decode));
  if (parts.has("million")) report.million = stamp(millionPart({ ...settings, log }));
  if (parts.has("million-capped")) report.millionCapped = stamp(millionPart({ ...settings, log }, MILLION_CAP));
  if (parts.has("fidelity")) report.fidelity = stamp(fidelityPart({ log }));
  // Read now, not at the start: another run of this benchmark may have written a part meanwhile.
  const previous = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, "utf8")) : {};
  for (const part of known.map((p) => reportKey[p] ?? p)) if (!report[part] && previous[part]) report[part] = previous[part];

  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(resultsDir, `${values.out}.svg`), chart(report));
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else printSummary(report, values.out);
  return 0;
}

if (process.argv[2] === "--child" && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [, , , kind, ...rest] = process.argv;
  reportFromChild(() => child(kind, rest));
}
