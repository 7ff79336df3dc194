// `repo-llama index`: the command registered in the CLI, its JSON and human output, and its argument errors.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { buildCli, makeTree } from "./support/indexer.mjs";

const cli = await buildCli();
const run = (...args) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });

const root = makeTree({
  "src/main.ts": "export const answer = 42;\n",
  "README.md": "# fixture\n",
  "node_modules/dep/index.js": "x\n",
  "logo.png": "x",
  "big.txt": "x".repeat(3000),
});

test("index --json prints files, bytes, estimated tokens, skips by reason and time", () => {
  const child = run("index", root, "--json", "--max-file-kb", "2");
  assert.equal(child.status, 0, child.stderr);
  const out = JSON.parse(child.stdout);
  assert.deepEqual(Object.keys(out), ["files", "bytes", "estimatedTokens", "skipped", "ms"]);
  assert.equal(out.files, 2);
  assert.equal(out.bytes, 26 + 10);
  assert.ok(out.estimatedTokens > 40 && out.estimatedTokens < 100, `estimatedTokens ${out.estimatedTokens}`);
  assert.deepEqual(out.skipped, { ignored: 1, binary: 1, tooLarge: 1 });
  assert.equal(typeof out.ms, "number");
});

test("index without --json prints a summary; --exclude and --include narrow it", () => {
  const child = run("index", root, "--exclude", "README.md");
  assert.equal(child.status, 0, child.stderr);
  const [folder, totals, skipped] = child.stdout.split("\n");
  assert.equal(folder, root);
  assert.match(totals, /^2 files · 3\.0 KB · ~\d+ tokens in \d+ ms$/);
  assert.equal(skipped, "Skipped 3: 2 ignored, 1 binary");
  const included = JSON.parse(run("index", root, "--json", "--include", "src/**").stdout);
  assert.equal(included.files, 1);
});

test("bad arguments and a missing folder are errors that say what to do", () => {
  const badSize = run("index", root, "--max-file-kb", "lots");
  assert.equal(badSize.status, 2);
  assert.match(badSize.stderr, /--max-file-kb needs a positive number of KiB, got "lots"/);
  const unknown = run("index", "--frobnicate");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /usage: repo-llama index/);
  const missing = run("index", `${root}/nope`, "--json");
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /Cannot index .*nope: no such folder\. Open an existing folder\./);
});
