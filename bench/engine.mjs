// npm run bench -- engine [--json] [--reps N] [--threads N] [--decode N] [--models a,b] [--kv f16|f32]
// Our engine and llama.cpp (node-llama-cpp, prebuilt CPU build) on the same random-weight files with
// real shapes: Llama-3-8B Q4_0 and Llama-3.2-1B Q8_0 (written by the fixture writer into
// build/bench-models when missing). Each measurement runs in a fresh child process (so load time and
// peak RSS are that engine's alone); engines alternate run by run; medians over the repeats.
//   prefill: tokens/s over a 512-token prompt (one batch of 512)
//   decode:  tokens/s of greedy one-token steps right after that prompt
//   load:    seconds to a usable model; peak RSS: the child's maximum resident set
// Both engines keep the context in an F16 KV cache: llama.cpp's default (flash attention left on auto),
// and ours the full cache with kvType "f16" (--kv f32 measures our F32 reference cache instead).
// Goal (issue 3): ratios ours/llama.cpp ≥ 1.0.
// Results: bench/results/engine.json and bench/results/engine.svg.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ensureModels, escapeSvg, loadLlamaCpp, loadOurEngine, machineInfo, median, ordinaryTokens, reportFromChild, resultsDir, runChild } from "./lib.mjs";

const MODELS = { "llama3-8b-q4_0": "Llama-3-8B shape, Q4_0", "llama32-1b-q8_0": "Llama-3.2-1B shape, Q8_0" };
const PROMPT_TOKENS = 512;

/** The benchmark prompt: ordinary (non-special) token ids, the same for both engines. */
const promptTokens = () => ordinaryTokens(PROMPT_TOKENS);

// ---- one measurement, in a child process ----

async function measureOurs(modelPath, threads, decodeTokens, kvType) {
  const engine = loadOurEngine();
  const prompt = promptTokens();
  let t = performance.now();
  const model = await engine.Model.load(modelPath, { threads });
  const loadSeconds = (performance.now() - t) / 1000;
  const ctx = model.createContext({ nCtx: PROMPT_TOKENS + decodeTokens + 8, nBatch: PROMPT_TOKENS, kvType });
  t = performance.now();
  await ctx.prefill(prompt);
  const prefillSeconds = (performance.now() - t) / 1000;
  // generate samples decodeTokens + 1 tokens and decodes all but the last: decodeTokens forward steps.
  const r = await ctx.generate({ maxTokens: decodeTokens + 1, sampling: { temperature: 0 } });
  const steps = Math.max(1, r.tokens.length - 1);
  return { loadSeconds, prefillTokPerS: PROMPT_TOKENS / prefillSeconds, decodeTokPerS: steps / r.stats.seconds, decodeSteps: steps };
}

async function measureLlamaCpp(modelPath, threads, decodeTokens) {
  const llama = await loadLlamaCpp();
  const prompt = promptTokens();
  let t = performance.now();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const loadSeconds = (performance.now() - t) / 1000;
  const context = await model.createContext({
    contextSize: PROMPT_TOKENS + decodeTokens + 8,
    batchSize: PROMPT_TOKENS,
    threads,
    sequences: 1,
  });
  const sequence = context.getSequence();
  t = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(prompt);
  const prefillSeconds = (performance.now() - t) / 1000;
  let steps = 0;
  t = performance.now();
  for await (const token of sequence.evaluate([prompt[prompt.length - 1]], { temperature: 0 })) {
    void token;
    if (++steps >= decodeTokens) break;
  }
  const decodeSeconds = (performance.now() - t) / 1000;
  return { loadSeconds, prefillTokPerS: PROMPT_TOKENS / prefillSeconds, decodeTokPerS: steps / decodeSeconds, decodeSteps: steps };
}

const child = (engineName, modelPath, threads, decodeTokens, kvType) =>
  engineName === "ours" ? measureOurs(modelPath, threads, decodeTokens, kvType) : measureLlamaCpp(modelPath, threads, decodeTokens);

/** One measurement of `engineName` in a fresh child process of this script. */
const measureInChild = (engineName, modelPath, threads, decodeTokens, kvType) =>
  runChild(fileURLToPath(import.meta.url), [engineName, modelPath, threads, decodeTokens, kvType], `${engineName} on ${modelPath}`);

// ---- report ----

function chart(results) {
  const groups = [];
  for (const r of results) {
    groups.push({ label: `${r.model} prefill`, ours: r.ours.prefillTokPerS, theirs: r.llamaCpp.prefillTokPerS });
    groups.push({ label: `${r.model} decode`, ours: r.ours.decodeTokPerS, theirs: r.llamaCpp.decodeTokPerS });
  }
  const rowH = 56, left = 230, width = 760, barMax = width - left - 90;
  const height = 50 + groups.length * rowH + 30;
  let body = "";
  groups.forEach((g, i) => {
    const y = 50 + i * rowH;
    const max = Math.max(g.ours, g.theirs);
    const wo = (g.ours / max) * barMax, wt = (g.theirs / max) * barMax;
    body += `<text x="${left - 10}" y="${y + 22}" text-anchor="end">${escapeSvg(g.label)}</text>`;
    body += `<rect x="${left}" y="${y + 4}" width="${wo.toFixed(1)}" height="18" fill="#3b82f6"/>`;
    body += `<text x="${left + wo + 6}" y="${y + 18}">${g.ours.toFixed(2)} tok/s</text>`;
    body += `<rect x="${left}" y="${y + 24}" width="${wt.toFixed(1)}" height="18" fill="#9ca3af"/>`;
    body += `<text x="${left + wt + 6}" y="${y + 38}">${g.theirs.toFixed(2)} tok/s (×${(g.ours / g.theirs).toFixed(2)})</text>`;
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="10" y="20" font-size="14" font-weight="bold">hcattn vs llama.cpp, 2 threads, ${PROMPT_TOKENS}-token prompt (medians)</text>` +
    `<rect x="10" y="30" width="12" height="12" fill="#3b82f6"/><text x="26" y="40">ours</text>` +
    `<rect x="70" y="30" width="12" height="12" fill="#9ca3af"/><text x="86" y="40">llama.cpp (ratio ours/llama.cpp)</text>` +
    body +
    `</svg>\n`
  );
}

export async function main(args) {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      reps: { type: "string", default: "3" },
      threads: { type: "string", default: "2" },
      decode: { type: "string", default: "16" },
      models: { type: "string", default: Object.keys(MODELS).join(",") },
      kv: { type: "string", default: "f16" },
    },
  });
  if (values.kv !== "f16" && values.kv !== "f32") throw new Error(`--kv must be f16 or f32 (got "${values.kv}")`);
  const reps = Math.max(1, Number(values.reps));
  const threads = Number(values.threads);
  const decodeTokens = Math.max(1, Number(values.decode));
  const names = values.models.split(",").filter(Boolean);
  for (const n of names) if (!MODELS[n]) throw new Error(`unknown model "${n}" (known: ${Object.keys(MODELS).join(", ")})`);
  const paths = ensureModels(names);

  const results = [];
  for (const name of names) {
    const runs = { ours: [], llamaCpp: [] };
    for (let rep = 0; rep < reps; rep++) {
      // Alternate which engine goes first so that neither always gets the warmer page cache.
      const order = rep % 2 ? ["llamaCpp", "ours"] : ["ours", "llamaCpp"];
      for (const e of order) {
        const m = measureInChild(e === "ours" ? "ours" : "llama.cpp", paths[name], threads, decodeTokens, values.kv);
        runs[e].push(m);
        if (!values.json) {
          console.error(`${name} rep ${rep + 1}/${reps} ${e}: prefill ${m.prefillTokPerS.toFixed(2)} tok/s, decode ${m.decodeTokPerS.toFixed(2)} tok/s, load ${m.loadSeconds.toFixed(2)} s, peak RSS ${m.peakRssMB.toFixed(0)} MB`);
        }
      }
    }
    const summarize = (list) => ({
      prefillTokPerS: median(list.map((m) => m.prefillTokPerS)),
      decodeTokPerS: median(list.map((m) => m.decodeTokPerS)),
      loadSeconds: median(list.map((m) => m.loadSeconds)),
      peakRssMB: median(list.map((m) => m.peakRssMB)),
    });
    const ours = summarize(runs.ours);
    const llamaCpp = summarize(runs.llamaCpp);
    results.push({
      model: name,
      description: MODELS[name],
      ours,
      llamaCpp,
      ratios: {
        prefill: ours.prefillTokPerS / llamaCpp.prefillTokPerS,
        decode: ours.decodeTokPerS / llamaCpp.decodeTokPerS,
        loadSeconds: ours.loadSeconds / llamaCpp.loadSeconds,
        peakRss: ours.peakRssMB / llamaCpp.peakRssMB,
      },
      runs,
    });
  }

  const report = {
    benchmark: "engine",
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: { threads, promptTokens: PROMPT_TOKENS, decodeTokens, reps, oursKv: `${values.kv} full`, llamaCppKv: "f16, flash attention auto" },
    results: results.map(({ runs, ...r }) => ({ ...r, runs })),
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, "engine.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(resultsDir, "engine.svg"), chart(results));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    for (const r of results) {
      console.log(`${r.description} (${r.model}), medians of ${reps}:`);
      console.log(`  prefill  ours ${r.ours.prefillTokPerS.toFixed(2)} tok/s  llama.cpp ${r.llamaCpp.prefillTokPerS.toFixed(2)} tok/s  ratio ${r.ratios.prefill.toFixed(2)}`);
      console.log(`  decode   ours ${r.ours.decodeTokPerS.toFixed(2)} tok/s  llama.cpp ${r.llamaCpp.decodeTokPerS.toFixed(2)} tok/s  ratio ${r.ratios.decode.toFixed(2)}`);
      console.log(`  load     ours ${r.ours.loadSeconds.toFixed(2)} s  llama.cpp ${r.llamaCpp.loadSeconds.toFixed(2)} s`);
      console.log(`  peak RSS ours ${r.ours.peakRssMB.toFixed(0)} MB  llama.cpp ${r.llamaCpp.peakRssMB.toFixed(0)} MB`);
    }
    console.log(`results: ${join(resultsDir, "engine.json")}, chart: ${join(resultsDir, "engine.svg")}`);
  }
  return 0;
}

if (process.argv[2] === "--child" && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [, , , engineName, modelPath, threads, decodeTokens, kvType] = process.argv;
  reportFromChild(() => child(engineName, modelPath, Number(threads), Number(decodeTokens), kvType));
}
