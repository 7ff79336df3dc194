// The context indicator's text (src/chat/messages.ts) after an edit, on segments of the real indexer: files
// are ordered stable-first, so the prefill starts at the segment that took the edited file's place, and the
// indicator must still name the file that was edited.
import assert from "node:assert/strict";
import { rmSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";
import { loadIndexer, makeTree, options, repoRoot, tempDir } from "./support/indexer.mjs";

const outfile = join(tempDir("repo-llama-messages-"), "messages.cjs");
await build({ entryPoints: [join(repoRoot, "src/chat/messages.ts")], bundle: true, platform: "node", format: "cjs", outfile, logLevel: "silent" });
const { changedFiles, formatContextSource } = createRequire(import.meta.url)(outfile);
const { indexer } = await loadIndexer();

const hour = Math.floor(Date.now() / 1000) - 3600;
const index = async (root) => (await indexer.indexWorkspace(root, options({ name: "shop" }))).segments;
/** The context as ChatController.openContext describes it: reuse up to the first changed chain hash. */
function updateInfo(before, after) {
  const reusedSegments = after.findIndex((s, i) => s.chainHash !== before[i]?.chainHash);
  const tokensOf = (segments) => segments.reduce((sum, s) => sum + s.estimatedTokens, 0);
  const reusedTokens = tokensOf(after.slice(0, reusedSegments));
  return {
    tokens: tokensOf(after),
    reusedTokens,
    prefilledTokens: tokensOf(after) - reusedTokens,
    source: "prefill",
    reusedSegments,
    prefilledFrom: after[reusedSegments].id,
    changedFiles: changedFiles(before, after),
  };
}

test("after an edit the indicator names the edited file and the segment the prefill started at", async () => {
  const root = makeTree({
    "src/price.ts": { content: "export const price = 3;\n", mtime: hour },
    "src/cart.ts": { content: "export const cart = [];\n", mtime: hour + 10 },
    ".vscode/settings.json": { content: "{}\n", mtime: hour + 20 },
  });
  const before = await index(root);
  assert.deepEqual(before.map((s) => s.id), ["head", "src/price.ts", "src/cart.ts", ".vscode/settings.json", "tail"]);
  writeFileSync(join(root, "src/price.ts"), "export const price = 3;\n// Prices are rounded to cents.\n");
  const after = await index(root);
  // The edited file moved to the end; the first changed position now holds the file that followed it.
  assert.deepEqual(after.map((s) => s.id), ["head", "src/cart.ts", ".vscode/settings.json", "src/price.ts", "tail"]);

  const info = updateInfo(before, after);
  assert.equal(info.prefilledFrom, "src/cart.ts");
  assert.deepEqual(info.changedFiles, ["src/price.ts"]);
  const n = (x) => x.toLocaleString("en-US");
  assert.equal(
    formatContextSource(info),
    `Context: ${n(info.tokens)} tokens (${n(info.reusedTokens)} reused, ${n(info.prefilledTokens)} prefilled from src/cart.ts on, after src/price.ts changed)`,
  );
});

test("edited, added and removed files are named; the prompt's head and tail are not", async () => {
  const root = makeTree({
    "a.ts": { content: "a\n", mtime: hour },
    "b.ts": { content: "b\n", mtime: hour + 10 },
    "c.ts": { content: "c\n", mtime: hour + 20 },
  });
  const before = await index(root);
  rmSync(join(root, "a.ts"));
  writeFileSync(join(root, "c.ts"), "c, edited\n");
  utimesSync(join(root, "c.ts"), hour + 30, hour + 30);
  makeTree({ "d.ts": { content: "d\n", mtime: hour + 40 }, "e.ts": { content: "e\n", mtime: hour + 50 } }, root);
  const after = await index(root);
  assert.notEqual(after.at(-1).hash, before.at(-1).hash, "the tail counts the files, so it changed too");
  assert.deepEqual(changedFiles(before, after), ["c.ts", "d.ts", "e.ts", "a.ts"]);
  assert.match(formatContextSource(updateInfo(before, after)), /prefilled from b\.ts on, after c\.ts and 3 more files changed\)$/);
});

test("the edited file named once when the prefill starts at it; no change list on a first open; other sources", () => {
  const base = { tokens: 1234, reusedTokens: 1000, prefilledTokens: 234, source: "prefill" };
  assert.equal(
    formatContextSource({ ...base, prefilledFrom: "src/price.ts", changedFiles: ["src/price.ts"] }),
    "Context: 1,234 tokens (1,000 reused, 234 prefilled from src/price.ts on, after it changed)",
  );
  assert.equal(
    formatContextSource({ ...base, prefilledFrom: "src/cart.ts", changedFiles: ["src/cart.ts", "src/price.ts"] }),
    "Context: 1,234 tokens (1,000 reused, 234 prefilled from src/cart.ts on, after src/cart.ts and src/price.ts changed)",
  );
  // A snapshot reused in part (nothing to compare with in this window): where the prefill started.
  assert.equal(formatContextSource({ ...base, prefilledFrom: "src/cart.ts" }), "Context: 1,234 tokens (1,000 reused, 234 prefilled from src/cart.ts on)");
  assert.equal(
    formatContextSource({ ...base, reusedTokens: 0, prefilledTokens: 1234, prefilledFrom: "head" }),
    "Context: 1,234 tokens (0 reused, 1,234 prefilled)",
  );
  assert.equal(formatContextSource({ ...base, source: "disk", reusedTokens: 1234, prefilledTokens: 0 }), "Context: 1,234 tokens (all from disk)");
});
