// npm run bench -- session [--tokens N] [--reps N] [--model PATH] [--corpus DIR] [--threads N] [--budget 25%] [--dist DIR]
// A repository context's life through the real sidecar (dist/sidecar.js over JSON-RPC, as the extension
// drives it): a slice of a real package (default node_modules/markdown-it/lib, 52 files of about 47k tokens;
// files in path order until N tokens, default 32768) on the 1B-shape Q8_0 model, and for each repeat:
//   cold      a fresh sidecar prefills the whole context (snapshot folder empty)
//   follow-up time to first token of a second question (the conversation is prefilled, the repository reused)
//   reload    a new sidecar opens the same context from its snapshot on disk, vs the cold prefill
//   edit      the last file changes: only its segment and the tail are prefilled again, vs the cold prefill
// Medians over the repeats, ratios, and bench/results/session.json. Goals (issue 5): follow-up TTFT ≤ 5% of
// the cold prefill; reload ≥ 50× faster than re-prefilling.
import { spawn } from "node:child_process";
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import rpc from "vscode-jsonrpc/node.js";
import { loadIndexer, repoRoot, tempDir } from "../test/unit/support/indexer.mjs";

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round = (x, digits = 3) => Number(x.toFixed(digits));

/**
 * Copies files of `corpus` (path order) into a new folder until their text holds about `tokens` tokens of
 * the model (its own tokenizer counts them); mtimes ascend in that order, so the last copied file is the
 * last segment.
 */
async function sliceOf(model, corpus, tokens) {
  const all = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(m?js|ts|md)$/.test(name)) all.push(full);
    }
  };
  walk(corpus);
  const root = tempDir("repo-llama-bench-session-");
  let counted = 0;
  const base = Date.now() / 1000 - 3600;
  for (const [i, file] of all.entries()) {
    if (counted >= tokens) break;
    const target = join(root, relative(corpus, file));
    cpSync(file, target);
    utimesSync(target, base + i, base + i);
    counted += (await model.tokenize(readFileSync(file, "utf8"), false, false)).length;
  }
  return root;
}

async function segmentsOf(indexer, root) {
  const result = await indexer.indexWorkspace(root, { ...indexer.defaultIndexOptions, name: "slice" });
  return { segments: result.segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash })), files: result.files };
}

async function startSidecar(dist, loadParams) {
  const child = spawn(process.execPath, [join(dist, "sidecar.js")], { stdio: ["pipe", "pipe", "pipe"] });
  const lines = [];
  child.stderr.setEncoding("utf8").on("data", (chunk) => lines.push(...chunk.split("\n").filter(Boolean)));
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  connection.listen();
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const started = performance.now();
  const loaded = await connection.sendRequest("engine/load", loadParams);
  const loadSeconds = (performance.now() - started) / 1000;
  const stop = async () => {
    await Promise.race([connection.sendRequest("engine/shutdown").catch(() => undefined), exited]);
    await exited;
    connection.dispose();
  };
  return { connection, loaded, loadSeconds, lines, stop };
}

async function timed(run) {
  const started = performance.now();
  const result = await run();
  return { result, seconds: (performance.now() - started) / 1000 };
}

export async function main(args) {
  const { values } = parseArgs({
    args,
    options: {
      tokens: { type: "string", default: "32768" },
      reps: { type: "string", default: "3" },
      model: { type: "string", default: join(repoRoot, "build", "bench-models", "llama32-1b-q8_0.gguf") },
      corpus: { type: "string", default: join(repoRoot, "node_modules", "markdown-it", "lib") },
      threads: { type: "string", default: "2" },
      budget: { type: "string", default: "25%" },
      // The build measured (sidecar.js and hcattn.node): a copy keeps a long run steady while dist/ is rebuilt.
      dist: { type: "string", default: join(repoRoot, "dist") },
    },
  });
  const tokens = Number(values.tokens);
  const reps = Math.max(1, Number(values.reps));
  const modelPath = resolve(values.model);
  if (!existsSync(modelPath)) {
    console.error(`bench session: ${modelPath} does not exist; write it with \`npm run fixtures -- build/bench-models --shapes\`.`);
    return 2;
  }
  const dist = resolve(values.dist);
  if (!existsSync(join(dist, "sidecar.js"))) {
    console.error(`bench session: ${join(dist, "sidecar.js")} does not exist; run \`npm run build\` first.`);
    return 2;
  }
  const { indexer } = await loadIndexer();
  const addon = createRequire(import.meta.url)(process.env.HCATTN_ADDON || join(dist, "hcattn.node"));
  const root = await sliceOf(await addon.Model.load(modelPath, { threads: 1 }), resolve(values.corpus), tokens);
  const { segments, files } = await segmentsOf(indexer, root);
  const lastFile = files.at(-1).path;
  const loadParams = {
    modelPath,
    device: "cpu",
    threads: Number(values.threads),
    kv: { budget: values.budget, topP: 0.995, sinkTokens: 4, recentTokens: 256 },
    contextTokens: Math.ceil(tokens * 1.5) + 4096,
    // Shared by every sidecar, as globalStorage is in VS Code: the built-in key codebooks are trained once.
    cacheDir: tempDir("repo-llama-bench-cache-"),
  };
  console.log(`session: ${files.length} files of ${values.corpus}, last ${lastFile}; model ${modelPath}, KV ${values.budget}, ${reps} repeats`);
  // The first prefill of a model trains the engine's built-in codebooks (then cached): not part of any timing.
  const warm = await startSidecar(dist, loadParams);
  const warmUp = await timed(() => warm.connection.sendRequest("context/open", { segments: segments.slice(0, 1), snapshotDir: "" }));
  await warm.stop();
  console.log(`  warm-up (codebooks of this model and KV budget): ${warmUp.seconds.toFixed(2)} s`);

  const question = { role: "user", content: "What does this package do? Answer in one sentence." };
  const runs = [];
  for (let rep = 0; rep < reps; rep++) {
    const snapshotDir = tempDir("repo-llama-bench-snapshots-");
    const open = (sidecar, segs) =>
      timed(() => sidecar.connection.sendRequest("context/open", { segments: segs, snapshotDir, workspaceFolder: root }));

    // Cold: a fresh sidecar, nothing on disk.
    const first = await startSidecar(dist, loadParams);
    const cold = await open(first, segments);
    if (cold.result.source !== "prefill" || cold.result.reusedTokens !== 0) throw new Error(`cold open was not a prefill: ${JSON.stringify(cold.result)}`);
    const saved = await first.connection.sendRequest("context/save", { contextId: cold.result.contextId, snapshotDir });
    const ask = (sidecar, messages) =>
      timed(() => sidecar.connection.sendRequest("chat/ask", { contextId: cold.result.contextId, requestId: "q", messages, maxTokens: 8, sampling: { temperature: 0 } }));
    const one = await ask(first, [question]);
    const two = await ask(first, [question, { role: "assistant", content: one.result.text }, { role: "user", content: "And which file is its entry point?" }]);
    const stats = await first.connection.sendRequest("engine/stats");
    await first.stop();

    // Reload: a new sidecar (a VS Code restart) opens the same context from disk.
    const second = await startSidecar(dist, loadParams);
    const reload = await open(second, segments);
    if (reload.result.source !== "disk" || reload.result.reusedTokens !== cold.result.tokens) throw new Error(`reload did not come from disk: ${JSON.stringify(reload.result)}`);

    // Edit: the last file (stable-first order: the newest) changes; the sidecar re-prefills its segment and the tail.
    const file = join(root, lastFile);
    const original = readFileSync(file);
    appendFileSync(file, "\n// edited: one more line at the end\n");
    const edited = await segmentsOf(indexer, root);
    const edit = await open(second, edited.segments);
    await second.stop();
    writeFileSync(file, original);
    runs.push({
      tokens: cold.result.tokens,
      coldSeconds: cold.seconds,
      coldPrefillSeconds: cold.result.prefillSeconds,
      coldTokensPerSecond: cold.result.tokensPerSecond,
      saveSeconds: saved.seconds,
      snapshotBytes: saved.bytes,
      firstAnswer: { timeToFirstTokenMs: one.result.stats.timeToFirstTokenMs, questionTokens: one.result.stats.questionTokens },
      followUp: {
        timeToFirstTokenMs: two.result.stats.timeToFirstTokenMs,
        questionTokens: two.result.stats.questionTokens,
        reusedTokens: two.result.stats.reusedTokens,
      },
      loadSeconds: second.loadSeconds,
      reloadSeconds: reload.seconds,
      edit: { seconds: edit.seconds, reusedTokens: edit.result.reusedTokens, prefilledTokens: edit.result.tokens - edit.result.reusedTokens },
      memory: stats.memory,
    });
    const r = runs.at(-1);
    console.log(
      `  repeat ${rep + 1}: cold ${r.coldSeconds.toFixed(2)} s (${Math.round(r.coldTokensPerSecond)} tok/s), follow-up TTFT ${Math.round(r.followUp.timeToFirstTokenMs)} ms, ` +
        `reload ${r.reloadSeconds.toFixed(3)} s, edit ${r.edit.seconds.toFixed(2)} s (${r.edit.prefilledTokens} tokens prefilled, ${r.edit.reusedTokens} reused)`,
    );
    rmSync(snapshotDir, { recursive: true, force: true });
  }

  const m = (pick) => median(runs.map(pick));
  const coldSeconds = m((r) => r.coldSeconds);
  const followUpMs = m((r) => r.followUp.timeToFirstTokenMs);
  const reloadSeconds = m((r) => r.reloadSeconds);
  const editSeconds = m((r) => r.edit.seconds);
  const report = {
    model: modelPath,
    engine: process.env.HCATTN_ADDON || join(dist, "hcattn.node"),
    warmUpSeconds: round(warmUp.seconds),
    corpus: values.corpus,
    files: files.length,
    lastFile,
    kvBudget: values.budget,
    threads: Number(values.threads),
    reps,
    tokens: runs[0].tokens,
    medians: {
      coldPrefillSeconds: round(coldSeconds),
      coldTokensPerSecond: round(m((r) => r.coldTokensPerSecond), 1),
      followUpTimeToFirstTokenMs: round(followUpMs, 1),
      followUpQuestionTokens: m((r) => r.followUp.questionTokens),
      snapshotSaveSeconds: round(m((r) => r.saveSeconds)),
      snapshotBytes: m((r) => r.snapshotBytes),
      reloadSeconds: round(reloadSeconds, 4),
      modelLoadSeconds: round(m((r) => r.loadSeconds)),
      editRePrefillSeconds: round(editSeconds),
      editPrefilledTokens: m((r) => r.edit.prefilledTokens),
    },
    ratios: {
      followUpTtftShareOfCold: round(followUpMs / 1000 / coldSeconds, 4),
      followUpGoalMet: followUpMs / 1000 <= 0.05 * coldSeconds,
      reloadSpeedupOverPrefill: round(coldSeconds / reloadSeconds, 1),
      reloadGoalMet: coldSeconds / reloadSeconds >= 50,
      editShareOfFullPrefill: round(editSeconds / coldSeconds, 4),
    },
    runs,
    machine: { cpus: cpus()[0]?.model, parallelism: availableParallelism(), loadavg: loadavg().map((x) => round(x, 2)) },
    date: new Date().toISOString(),
  };
  const out = join(repoRoot, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "session.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(out, "session.svg"), chart(report));
  console.log(
    `session (${report.tokens} tokens, medians of ${reps}): cold prefill ${coldSeconds.toFixed(2)} s; follow-up TTFT ${followUpMs.toFixed(0)} ms ` +
      `= ${(100 * report.ratios.followUpTtftShareOfCold).toFixed(2)}% of it (goal ≤ 5%); reload from disk ${reloadSeconds.toFixed(3)} s = ` +
      `${report.ratios.reloadSpeedupOverPrefill}× faster than re-prefilling (goal ≥ 50×); edit of the last file ${editSeconds.toFixed(2)} s = ` +
      `${(100 * report.ratios.editShareOfFullPrefill).toFixed(1)}% of a full prefill → bench/results/session.json, session.svg`,
  );
  return 0;
}

/** Horizontal bars of the medians on a log scale: what each step of a session costs. */
export function chart(report) {
  const m = report.medians;
  const bars = [
    ["cold prefill", m.coldPrefillSeconds],
    ["re-prefill after editing the last file", m.editRePrefillSeconds],
    ["reload from the snapshot", m.reloadSeconds],
    ["follow-up question: first token", m.followUpTimeToFirstTokenMs / 1000],
  ];
  const width = 720;
  const left = 260;
  const row = 28;
  const height = 60 + bars.length * row;
  const lo = Math.log10(0.001);
  const hi = Math.log10(Math.max(...bars.map(([, v]) => v)) * 2);
  const x = (v) => left + ((Math.log10(Math.max(v, 0.001)) - lo) / (hi - lo)) * (width - left - 90);
  const escape = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const title = `Repository context, ${report.tokens} tokens, ${report.kvBudget} KV, ${report.threads} threads (medians of ${report.reps}; log scale)`;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">` +
    `<text x="10" y="20" font-weight="bold">${escape(title)}</text>` +
    bars
      .map(([label, v], i) => {
        const y = 40 + i * row;
        return (
          `<text x="10" y="${y + 14}">${escape(label)}</text>` +
          `<rect x="${left}" y="${y}" width="${Math.max(1, x(v) - left).toFixed(1)}" height="18" fill="#4a7bd0"/>` +
          `<text x="${(x(v) + 6).toFixed(1)}" y="${y + 14}">${v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(1)} s`}</text>`
        );
      })
      .join("") +
    `</svg>\n`
  );
}
