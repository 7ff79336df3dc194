// repo-llama ask end to end: the real CLI bundle (dist/cli.js), the real engine and a scripted fixture model
// whose greedy answer is a known text. A workspace of a few files (over 1024 tokens, so the HCAttention
// codebooks are trained and saved), asked once with a fresh prefill, once from the saved snapshot, and once
// after its newest file changed, when only that file and the prompt's closing tail may be prefilled.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadIndexer } from "../unit/support/indexer.mjs";
import { buildDist } from "../unit/support/engine-client.mjs";
import { loadEngine, repoRoot } from "./oracle-fixtures.mjs";

const ANSWER = "The add function in src/math.ts:1 returns the sum of both numbers.";
const cli = join(repoRoot, "dist", "cli.js");
const work = mkdtempSync(join(tmpdir(), "repo-llama-ask-"));
const modelPath = join(work, "scripted.gguf");
const workspace = join(work, "repo");
after(() => rmSync(work, { recursive: true, force: true }));

/** File i: ordinary code, about 300 tokens, each file different. */
function sourceFile(i) {
  const lines = [`// module ${i}: helpers for the demo repository`];
  for (let f = 0; f < 12; f++) lines.push(`export function helper${i}_${f}(value: number): number {`, `  return value * ${f + 2} + ${i};`, "}");
  return `${lines.join("\n")}\n`;
}

const FILES = ["src/math.ts", "src/a.ts", "src/b.ts", "src/c.ts", "src/d.ts", "README.md"];

before(() => {
  buildDist();
  const r = spawnSync(process.execPath, [join(repoRoot, "dist", "fixtures.js"), work, "--only", "scripted", "--scripted", ANSWER], { encoding: "utf8" });
  assert.equal(r.status, 0, `fixture writer failed:\n${r.stdout}\n${r.stderr}`);
  // Distinct modification times fix the stable-first order: FILES in this order, README.md last.
  FILES.forEach((name, i) => {
    const file = join(workspace, name);
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, name === "src/math.ts" ? "export const add = (a: number, b: number) => a + b;\n" : sourceFile(i));
    const t = new Date(Date.UTC(2024, 0, 1 + i));
    utimesSync(file, t, t);
  });
});

function ask(...args) {
  const r = spawnSync(process.execPath, [cli, "ask", "--model", modelPath, "--workspace", workspace, "--threads", "2", ...args], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The prompt's segments and their token counts, tokenized as the sidecar's ContextSession does. */
async function segmentTokens() {
  const { indexer } = await loadIndexer();
  const index = await indexer.indexWorkspace(workspace, { ...indexer.defaultIndexOptions });
  const model = await loadEngine().Model.load(modelPath, { threads: 2 });
  const counts = [];
  for (const s of index.segments) {
    const special = s.id === "head" || s.id === "tail";
    counts.push({ id: s.id, tokens: (await model.tokenize(s.text, false, special)).length });
  }
  return counts;
}

const total = (counts) => counts.reduce((n, c) => n + c.tokens, 0);

test("ask prints the scripted answer after prefilling the workspace", async () => {
  const r = ask("What does add do?");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${ANSWER}\n`);
  const counts = await segmentTokens();
  assert.ok(total(counts) > 1024, `workspace of ${total(counts)} tokens should exceed the 1024 calibration tokens`);
  assert.match(r.stderr, /indexed .*6 files/);
  assert.match(r.stderr, new RegExp(`prefilled ${total(counts)} tokens in [\\d.]+ s`));
  assert.match(r.stderr, /prefill [\d,]+\/[\d,]+ tokens \(\d+%/);
  assert.match(r.stderr, /stop: eog\]/);
});

test("--kv-cap: the context holds at most that many tokens and still answers; its snapshot holds the same", async () => {
  const counts = await segmentTokens();
  const r = ask("--kv-cap", "700", "What does add do?");
  assert.equal(r.code, 0, r.stderr);
  const m = r.stderr.match(/value cap: (\d+) of (\d+) tokens evicted, (\d+) held/);
  assert.ok(m, r.stderr);
  assert.equal(Number(m[2]), total(counts));
  assert.ok(Number(m[3]) <= 700 && Number(m[1]) + Number(m[3]) === total(counts), m[0]);
  assert.equal(r.stdout, `${ANSWER}\n`);
  const snapshot = join(work, "capped.hckv");
  const saved = ask("--kv-cap", "700", "--snapshot", snapshot, "What does add do?");
  assert.equal(saved.code, 0, saved.stderr);
  assert.match(saved.stderr, new RegExp(`${m[0]}\nsaved ${total(counts)} tokens to`));
  const loaded = ask("--kv-cap", "700", "--snapshot", snapshot, "What does add do?");
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.match(loaded.stderr, new RegExp(`loaded ${total(counts)} tokens[^\n]*\n[^\n]*nothing to prefill\n${m[0]}\n`));
  assert.equal(loaded.stdout, `${ANSWER}\n`);
});

test("--snapshot: the first run prefills and saves, the second loads every token and gives the same answer; other KV settings prefill again", async () => {
  const snapshot = join(work, "ctx.hckv");
  const counts = await segmentTokens();
  const n = total(counts);

  const first = ask("--snapshot", snapshot, "What does add do?");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`prefilled ${n} tokens`));
  assert.match(first.stderr, new RegExp(`saved ${n} tokens to ${snapshot.replace(/[.]/g, "\\.")}`));
  assert.ok(existsSync(snapshot));

  const second = ask("--snapshot", snapshot, "What does add do?");
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, new RegExp(`loaded ${n} tokens \\(${counts.length} of ${counts.length} saved segments\\) from ${snapshot.replace(/[.]/g, "\\.")} in [\\d.]+ s`));
  assert.match(second.stderr, new RegExp(`all ${n} tokens reused, nothing to prefill`));
  assert.doesNotMatch(second.stderr, /prefilled \d+|saved \d+ tokens/);
  assert.equal(second.stdout, first.stdout);
  assert.equal(second.stdout, `${ANSWER}\n`);

  // Saved with 25%: another budget cannot use it, says why, prefills everything and replaces it.
  const other = ask("--snapshot", snapshot, "--kv", "12.5%", "What does add do?");
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stderr, /cannot be used \(.*kv budget 25% in the snapshot vs 12\.5% now.*\); deleted it, prefilling instead/);
  assert.match(other.stderr, new RegExp(`prefilled ${n} tokens[^\n]*; context ${n} tokens\nsaved ${n} tokens to`));
  assert.match(ask("--snapshot", snapshot, "--kv", "12.5%", "What does add do?").stderr, new RegExp(`loaded ${n} tokens`));
});

test("--snapshot after the newest file changed: only that file and the closing tail are prefilled", async () => {
  const snapshot = join(work, "edit.hckv");
  const before = await segmentTokens();
  assert.equal(ask("--snapshot", snapshot, "What does add do?").code, 0);

  // README.md is the newest file: it stays last in the stable-first order, right before the tail.
  writeFileSync(join(workspace, "README.md"), `${sourceFile(99)}// edited\n`);
  const afterEdit = await segmentTokens();
  assert.equal(afterEdit[afterEdit.length - 2].id, "README.md");
  const kept = total(before) - before[before.length - 2].tokens - before[before.length - 1].tokens;
  const tail = afterEdit[afterEdit.length - 2].tokens + afterEdit[afterEdit.length - 1].tokens;

  const r = ask("--snapshot", snapshot, "What does add do?");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`loaded ${kept} tokens \\(${before.length - 2} of ${before.length} saved segments\\)`));
  assert.match(r.stderr, new RegExp(`prefilled ${tail} tokens in [\\d.]+ s.*, ${kept} reused; context ${kept + tail} tokens`));
  assert.match(r.stderr, new RegExp(`saved ${kept + tail} tokens to`));
  assert.equal(r.stdout, `${ANSWER}\n`);

  // And the file saved after the edit is whole again: the next run prefills nothing.
  const again = ask("--snapshot", snapshot, "What does add do?");
  assert.match(again.stderr, new RegExp(`loaded ${kept + tail} tokens`));
  assert.match(again.stderr, /nothing to prefill/);
});

test("Ctrl-C during the prefill exits with 130 after saving the finished files; the next run continues from them", async () => {
  // About 13.6k tokens (the scripted model's context is 16k), prefilled on one thread: the linear prefill
  // runs at thousands of tokens/s, so the interrupt must land right after the first progress line.
  const big = join(work, "big");
  for (let i = 0; i < 6; i++) {
    mkdirSync(join(big, "src"), { recursive: true });
    writeFileSync(join(big, "src", `f${i}.ts`), Array.from({ length: 200 }, (_, k) => `const x${i}_${k} = ${k * 7 + i};`).join("\n"));
  }
  const snapshot = join(work, "big.hckv");
  const args = [cli, "ask", "--model", modelPath, "--workspace", big, "--threads", "1", "--snapshot", snapshot, "What does add do?"];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let interrupted = false;
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    stderr += chunk;
    // The first progress line past 0 tokens and short of 100%: some chunks are done, so some files are
    // complete (a line at 0 tokens comes before any chunk).
    const progress = [...stderr.matchAll(/^prefill ([\d,]+)\/([\d,]+) tokens/gm)].map((m) => m.slice(1).map((x) => Number(x.replace(/,/g, ""))));
    if (!interrupted && progress.some(([done, total]) => done > 0 && done < total)) {
      interrupted = true;
      child.kill("SIGINT");
    }
  });
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.ok(interrupted, `the prefill ended before it could be interrupted:\n${stderr}`);
  assert.equal(code, 130, stderr);
  const cancelled = stderr.match(/Prefill cancelled after ([\d,]+) of ([\d,]+) tokens/);
  assert.ok(cancelled, stderr);
  const saved = Number(stderr.match(/saved (\d+) tokens to /)?.[1]);
  const total = Number(cancelled[2].replace(/,/g, ""));
  assert.ok(saved > 0 && saved < total, `saved ${saved} of ${total}:\n${stderr}`);

  const resumed = spawnSync(process.execPath, args, { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`loaded ${saved} tokens`));
  assert.match(resumed.stderr, new RegExp(`prefilled ${total - saved} tokens in [\\d.]+ s.*, ${saved} reused; context ${total} tokens`));
  assert.equal(resumed.stdout, `${ANSWER}\n`);
});

test("a bad model path or a file that is not GGUF gives a clear error and exit code 1", () => {
  const missing = join(work, "no-such-model.gguf");
  const r = spawnSync(process.execPath, [cli, "ask", "--model", missing, "--workspace", workspace, "question"], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `repo-llama ask: ${missing} does not exist. Pass --model the path of a Llama-3 model in GGUF format.\n`);

  const notGguf = join(workspace, "src", "a.ts");
  const t = spawnSync(process.execPath, [cli, "ask", "--model", notGguf, "--workspace", workspace, "question"], { encoding: "utf8" });
  assert.equal(t.status, 1);
  assert.match(t.stderr, /^repo-llama ask: a\.ts is not a GGUF model: it starts with .* instead of "GGUF"\. Pass --model/);

  const u = spawnSync(process.execPath, [cli, "ask", "--model", modelPath, "--workspace", workspace], { encoding: "utf8" });
  assert.equal(u.status, 2);
  assert.match(u.stderr, /the question is missing/);
});
