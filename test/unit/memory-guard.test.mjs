// The memory guard (src/sidecar/memory.ts) with the HCAttention sizes the engine measures: the bytes per
// token of each budget and tier come from the real engine (engine/load's kvBytesPerToken, tiny-f32:
// 2 layers × 2 KV heads × 16 dims), and a repository context that does not fit is refused by the real
// sidecar with what it needs and what to change, leaving a smaller one free to open.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";
import { buildDist, defaultKv, startSidecar, tinyModel } from "./support/engine-client.mjs";
import { loadIndexer, makeTree, options, repoRoot, tempDir } from "./support/indexer.mjs";

buildDist();
const modelPath = tinyModel();
const { indexer } = await loadIndexer();
const outfile = join(tempDir("repo-llama-memory-"), "memory.cjs");
await build({ entryPoints: [join(repoRoot, "src/sidecar/memory.ts")], bundle: true, platform: "node", format: "cjs", external: ["*.node"], outfile, logLevel: "silent" });
const { contextRefusal, fastTierPlace, planBytes, scratchBytes, vramRoom } = createRequire(import.meta.url)(outfile);

/** tiny-f32: an f16 K+V cache takes 2 (K, V) × 2 bytes × 2 layers × 2 KV heads × 16 dims per token. */
const F16_BYTES_PER_TOKEN = 256;
const layerHeads = 2 * 2;
const headDim = 16;

test("engine/load reports the configured budget's measured bytes per token and tier, not an f16 cache's", async () => {
  const measured = {};
  for (const budget of ["full", "50%", "25%", "12.5%"]) {
    const sidecar = await startSidecar({ modelPath, device: "cpu", threads: 2, kv: { ...defaultKv, budget }, contextTokens: 2048 });
    measured[budget] = sidecar.loaded.kvBytesPerToken;
    await sidecar.stop();
  }
  // Per token, layer and KV head: f16 keys and values are 2 × 16 bytes each; key codes are 12 bits per
  // group (a centroid-index byte and a level nibble; 8 groups at 25%, 4 at 12.5%); the tail estimate keeps
  // one f16 mean value row per 64 tokens.
  const means = (layerHeads * headDim * 2) / 64;
  assert.deepEqual(measured.full, { fast: F16_BYTES_PER_TOKEN, host: 0 });
  assert.deepEqual(measured["50%"], { fast: layerHeads * headDim * 2 + means, host: layerHeads * headDim * 2 });
  assert.deepEqual(measured["25%"], { fast: layerHeads * 8 * 1.5 + means, host: F16_BYTES_PER_TOKEN });
  assert.deepEqual(measured["12.5%"], { fast: layerHeads * 4 * 1.5 + means, host: F16_BYTES_PER_TOKEN });
  // The fast tier shrinks with the budget; the host tier keeps exact keys for re-scoring below 50%.
  assert.ok(measured["12.5%"].fast < measured["25%"].fast && measured["25%"].fast < measured["50%"].fast);
});

test("contextRefusal: the figures per tier, how many tokens fit, and what to change", () => {
  const plan = { tokens: 1_000_000, budget: "25%", perToken: { fast: 33_792, host: 131_072 }, fixedBytes: 32 * 2 ** 20, fastIn: "RAM" };
  const bytes = planBytes(plan);
  assert.deepEqual(bytes, { fast: 1_000_000 * 33_792 + 32 * 2 ** 20, host: 1_000_000 * 131_072 });
  assert.equal(contextRefusal(plan, { ramBytes: bytes.fast + bytes.host }), undefined, "exactly enough RAM fits");
  // What the current context holds is reused by the new one.
  assert.equal(contextRefusal(plan, { ramBytes: bytes.fast + bytes.host - 1000, heldRamBytes: 1000 }), undefined);

  const room = 64 * 2 ** 30;
  const fitting = Math.floor((room - 32 * 2 ** 20) / (33_792 + 131_072));
  assert.equal(
    contextRefusal(plan, { ramBytes: room }),
    "The repository context of 1,000,000 tokens needs 153.6 GiB of RAM where 64.0 GiB is available " +
      "(KV budget 25%: fast tier (RAM) 31.5 GiB at 33.0 KiB/token, host tier (RAM) 122.1 GiB at 128.0 KiB/token). " +
      `About ${fitting.toLocaleString("en-US")} tokens fit: leave files out with repoLlama.index.exclude or .repollamaignore, ` +
      `choose another repoLlama.kv.budget, set repoLlama.kv.maxTokensHeld to ${fitting} (the least-attended tokens are then dropped), ` +
      "or close other programs.",
  );

  // Holding at most maxTokensHeld tokens, the context needs their bytes only: it fits, unless the cap is too high.
  const capped = { ...plan, capTokens: fitting };
  assert.deepEqual(planBytes(capped), { fast: fitting * 33_792 + 32 * 2 ** 20, host: fitting * 131_072 });
  assert.equal(contextRefusal(capped, { ramBytes: room }), undefined);
  assert.match(
    contextRefusal({ ...plan, capTokens: 2 * fitting }, { ramBytes: room }),
    new RegExp(`^The repository context of 1,000,000 tokens, holding at most ${(2 * fitting).toLocaleString("en-US")} of them, needs .* lower repoLlama\\.kv\\.maxTokensHeld to ${fitting}, or close other programs\\.$`),
  );

  // With the fast tier on a GPU, its own room counts, and a smaller budget is what helps there.
  const gpu = { ...plan, fastIn: "VRAM" };
  const message = contextRefusal(gpu, { ramBytes: 200 * 2 ** 30, vramBytes: 16 * 2 ** 30 });
  assert.match(message, /needs 31\.5 GiB of GPU memory where 16\.0 GiB is free/);
  assert.match(message, /choose a smaller repoLlama\.kv\.budget \("12\.5%" keeps the least on the GPU\)/);
  assert.doesNotMatch(message, /of RAM/);
  assert.match(message, new RegExp(`About ${Math.floor((16 * 2 ** 30 - 32 * 2 ** 20) / 33_792).toLocaleString("en-US")} tokens fit`));
});

test("on a CUDA device a plain cache is checked against the GPU's free memory, with what it needs and what is free", () => {
  // Llama-3.1-8B: an f16 K+V cache takes 2 × 2 bytes × 32 layers × 8 KV heads × 128 dims = 128 KiB per token.
  const info = { nEmbd: 4096, nFf: 14336, nVocab: 128256, nLayer: 32, nHeadKv: 8, headDim: 128 };
  const perToken = { fast: 131_072, host: 0 };
  assert.equal(fastTierPlace("cuda", "full"), "VRAM");
  // HCAttention caches are host objects on the CUDA backend too; on a CPU everything is RAM.
  assert.equal(fastTierPlace("cuda", "25%"), "RAM");
  assert.equal(fastTierPlace("cpu", "full"), "RAM");

  // One 512-token prefill chunk's f32 activations (4 × (512 × (4 × 4096 + 2 × 14336) + 2 × 128256) bytes) stay free.
  assert.equal(scratchBytes(info), 93_300_736);
  const gpu = { freeBytes: 70 * 2 ** 30, totalBytes: 80 * 2 ** 30 };
  const vram = vramRoom(gpu, info);
  assert.equal(vram, 70 * 2 ** 30 - 93_300_736);
  assert.equal(vramRoom(undefined, info), undefined, "no GPU figure: nothing to check");

  const plan = (tokens) => ({ tokens, budget: "full", perToken, fixedBytes: 0, fastIn: "VRAM" });
  const ram = 200 * 2 ** 30;
  assert.equal(contextRefusal(plan(131_072), { ramBytes: ram, vramBytes: vram }), undefined, "128k tokens = 16 GiB fit in 70 GiB");
  const fitting = Math.floor(vram / 131_072);
  assert.equal(contextRefusal(plan(fitting), { ramBytes: ram, vramBytes: vram }), undefined, "exactly what is free fits");
  assert.equal(
    contextRefusal(plan(1_048_576), { ramBytes: ram, vramBytes: vram }),
    "The repository context of 1,048,576 tokens needs 128.0 GiB of GPU memory where 69.9 GiB is free " +
      "(KV budget full: fast tier (VRAM) 128.0 GiB at 128.0 KiB/token, host tier (RAM) 0.00 GiB at 0 B/token). " +
      `About ${fitting.toLocaleString("en-US")} tokens fit: leave files out with repoLlama.index.exclude or .repollamaignore, ` +
      'use an HCAttention repoLlama.kv.budget ("50%", "25%" or "12.5%": its cache stays in RAM), or close other programs.',
  );
  // Without a GPU figure (a build without CUDA) the same plan is not refused for the GPU's sake.
  assert.equal(contextRefusal(plan(1_048_576), { ramBytes: ram }), undefined);
  // GPU memory the current context holds is reused by the new one: 16 GiB held + 10 GiB free take 24 GiB.
  const held = { ramBytes: ram, vramBytes: 10 * 2 ** 30, heldVramBytes: 16 * 2 ** 30 };
  assert.equal(contextRefusal(plan(196_608), held), undefined);
  assert.match(contextRefusal(plan(262_144), held), /needs 32\.0 GiB of GPU memory where 26\.0 GiB is free/);
});

test("the sidecar refuses a repository context that would not fit, says why, and still opens one that fits", async () => {
  const loadParams = { modelPath, device: "cpu", threads: 2, kv: { ...defaultKv, budget: "25%" }, contextTokens: 300_000 };
  // The sidecar's own size with the model loaded and a small context open, to place the limit above it.
  const small = makeTree({ "src/a.ts": "export const a = 1;\n".repeat(50) });
  const smallSegments = await segmentsOf(small);
  const probe = await startSidecar(loadParams);
  await probe.connection.sendRequest("context/open", { segments: smallSegments, snapshotDir: "" });
  const { rssBytes } = await probe.connection.sendRequest("engine/stats");
  const perToken = probe.loaded.kvBytesPerToken.fast + probe.loaded.kvBytesPerToken.host;
  await probe.stop();

  // About 240k tokens (≈ 77 MB of KV at 322 bytes/token) against ≈ 40 MB of room.
  const files = {};
  for (let i = 0; i < 40; i++) files[`src/big${i}.txt`] = Array.from({ length: 480 }, (_, j) => `value ${i} ${j} ${j * 7} here\n`).join("");
  const bigSegments = await segmentsOf(makeTree(files));
  const limitMB = Math.ceil(rssBytes / 2 ** 20) + 40;
  const sidecar = await startSidecar(loadParams, { REPO_LLAMA_MEMORY_LIMIT_MB: String(limitMB) });
  const refusal = await sidecar.connection.sendRequest("context/open", { segments: bigSegments, snapshotDir: "" }).then(
    () => undefined,
    (error) => error,
  );
  assert.ok(refusal, "the big context was opened although it does not fit");
  assert.equal(refusal.code, 1003, refusal.message);
  const [, tokens, fitting] = refusal.message.match(/^The repository context of ([\d,]+) tokens needs [\d.]+ (?:M|G)iB of RAM where [\d.]+ GiB is available \(KV budget 25%: .*\)\. About ([\d,]+) tokens fit: leave files out with repoLlama\.index\.exclude or \.repollamaignore, choose another repoLlama\.kv\.budget, set repoLlama\.kv\.maxTokensHeld to \d+ \(the least-attended tokens are then dropped\), or close other programs\.$/) ?? [];
  assert.ok(tokens, refusal.message);
  assert.ok(refusal.message.includes(`fast tier (RAM) `) && refusal.message.includes(`at 256 B/token`), refusal.message);
  const need = Number(tokens.replaceAll(",", ""));
  assert.ok(need > 200_000, `tokens ${need}`);
  assert.ok(Number(fitting.replaceAll(",", "")) < need, refusal.message);
  assert.ok(perToken * need > 60 * 2 ** 20, "the workspace really needs more than the room left");

  const opened = await sidecar.connection.sendRequest("context/open", { segments: smallSegments, snapshotDir: "" });
  assert.equal(opened.source, "prefill");
  assert.equal(opened.reusedTokens, 0);
  await sidecar.stop();

  // With repoLlama.kv.maxTokensHeld at half what fits, the same workspace opens: the cache holds at most
  // that many tokens and dropped the rest.
  const cap = Math.floor(Number(fitting.replaceAll(",", "")) / 2);
  const held = await startSidecar({ ...loadParams, kv: { ...loadParams.kv, maxTokensHeld: cap } }, { REPO_LLAMA_MEMORY_LIMIT_MB: String(limitMB) });
  const big = await held.connection.sendRequest("context/open", { segments: bigSegments, snapshotDir: "" });
  assert.equal(big.tokens, need);
  const s = await held.connection.sendRequest("engine/stats");
  assert.equal(s.contextTokens, need);
  assert.ok(s.evictedTokens >= need - cap && s.evictedTokens < need, `evicted ${s.evictedTokens} of ${need}, cap ${cap}`);
  assert.ok(s.kvBytesInUse <= cap * perToken + 2 ** 20, `KV ${s.kvBytesInUse} bytes for ${cap} tokens at ${perToken}`);
  await held.stop();

  // Too small a cap for one prefill chunk beside the sinks and the recent window: engine/load says so.
  const tiny = await startSidecar({ ...loadParams, kv: { ...loadParams.kv, maxTokensHeld: 100 } }).then(
    () => undefined,
    (error) => error,
  );
  assert.match(String(tiny?.message ?? tiny), /repoLlama\.kv\.maxTokensHeld is 100: use 0 \(hold every token\) or at least 836/);
});

async function segmentsOf(root) {
  const result = await indexer.indexWorkspace(root, options({ name: "demo" }));
  return result.segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash }));
}
