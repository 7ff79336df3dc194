// The addon's phase-aware prefill, built-in codebooks, mapped snapshots and the value cap (stories260K,
// real weights): ctx.prefill(tokens, onProgress, {global}), kv {starBlock, codebooks: "builtin", valueCap,
// eviction}, codebookCacheDir, loadContext(..., {mapSnapshot}), kvMemory().diskBytes and .evictedTokens.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";

import { ensureFixtures, loadEngine, randomTokens } from "./oracle-fixtures.mjs";

const engine = loadEngine();
const paths = ensureFixtures(["stories260K"]);

/** Greedy next tokens after the context (decode steps attend globally). */
async function greedy(ctx, n) {
  const r = await ctx.generate({ maxTokens: n, sampling: { temperature: 0 } });
  return Array.from(r.tokens);
}

describe("phase-aware prefill and built-in codebooks through the addon", () => {
  test("a document split differently and truncated to a boundary equals a fresh prefill; {global} changes the question", async () => {
    const model = await engine.Model.load(paths.stories260K, { threads: 2 });
    const doc = randomTokens(400, model.info.nVocab, 5);
    const question = randomTokens(30, model.info.nVocab, 6);
    const kv = { mode: "25%", starBlock: 96, calibrationTokens: 128, recent: 16 };
    const options = { nCtx: 512, nBatch: 64, kv };

    const fresh = model.createContext(options);
    await fresh.prefill(doc);
    const ref = fresh.fork();
    await fresh.prefill(question, undefined, { global: true });
    const freshAnswer = await greedy(fresh, 8);

    const edited = model.createContext(options);
    await edited.prefill(doc.slice(0, 250));
    await edited.prefill(randomTokens(40, model.info.nVocab, 7));
    edited.truncate(200);
    for (let at = 200; at < doc.length; at += 33) await edited.prefill(doc.slice(at, Math.min(doc.length, at + 33)));
    assert.deepEqual(Array.from(edited.tokens), doc);
    await edited.prefill(question, undefined, { global: true });
    assert.deepEqual(await greedy(edited, 8), freshAnswer);

    // The same question prefilled with star blocks reads only its block and the anchor, so the token after
    // it sees other keys and values than after the global question.
    const starQ = ref.fork();
    const globalQ = ref.fork();
    await starQ.prefill(question);
    await globalQ.prefill(question, undefined, { global: true });
    const next = [question[3]];
    const a = await starQ.evalLogits(next, 5);
    const b = await globalQ.evalLogits(next, 5);
    assert.notDeepEqual(a.top[0], b.top[0]);
    for (const c of [fresh, ref, edited, starQ, globalQ]) c.dispose();
  });

  test("loadContext with mapSnapshot serves keys and values from the file and answers like a copying load", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hcattn-mapped-"));
    try {
      const model = await engine.Model.load(paths.stories260K, { threads: 2 });
      const options = { nCtx: 512, kv: { mode: "25%", calibrationTokens: 128 } };
      const ctx = model.createContext(options);
      await ctx.prefill(randomTokens(300, model.info.nVocab, 3));
      const file = join(dir, "ctx.hckv");
      await ctx.saveSnapshot(file, []);
      const copied = (await model.loadContext(file, options)).context;
      const mapped = (await model.loadContext(file, { ...options, mapSnapshot: true })).context;
      const c = copied.kvMemory();
      const m = mapped.kvMemory();
      assert.equal(c.diskBytes, 0);
      // Keys and values of 300 tokens, f16, every layer and KV head.
      assert.equal(m.diskBytes, 300 * 2 * 2 * model.info.nLayer * model.info.nHeadKv * model.info.headDim);
      assert.ok(m.hostBytes < c.hostBytes - m.diskBytes / 2, `host bytes mapped ${m.hostBytes} vs copied ${c.hostBytes}`);
      const q = randomTokens(12, model.info.nVocab, 4);
      await copied.prefill(q, undefined, { global: true });
      await mapped.prefill(q, undefined, { global: true });
      assert.deepEqual(await greedy(mapped, 8), await greedy(copied, 8));
      for (const x of [ctx, copied, mapped]) x.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a value cap bounds the held tokens and memory, keeps the context answering, and saves what it holds", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hcattn-cap-"));
    try {
      const model = await engine.Model.load(paths.stories260K, { threads: 2 });
      const kv = { mode: "25%", calibrationTokens: 128, recent: 16 };
      const doc = randomTokens(700, model.info.nVocab, 11);
      const capped = model.createContext({ nCtx: 1024, nBatch: 64, kv: { ...kv, valueCap: 256 } });
      const open = model.createContext({ nCtx: 1024, nBatch: 64, kv });
      await capped.prefill(doc);
      await open.prefill(doc);
      const c = capped.kvMemory();
      const o = open.kvMemory();
      assert.equal(c.tokens, 700);
      assert.ok(c.evictedTokens >= 700 - 256 && c.evictedTokens <= 700 - 240, `evicted ${c.evictedTokens}`);
      assert.equal(o.evictedTokens, 0);
      // Keys and values of at most 256 tokens, f16, every layer and KV head.
      assert.ok(c.hostBytes <= 256 * 2 * 2 * model.info.nLayer * model.info.nHeadKv * model.info.headDim, `host ${c.hostBytes}`);
      assert.ok(c.hostBytes < o.hostBytes / 2);
      // Saved, it loads holding the same tokens; both answer a question alike (its 8 tokens and 6 steps fit
      // in the room the last eviction left, so neither evicts again), and a fork keeps what it holds.
      const file = join(dir, "capped.hckv");
      await capped.saveSnapshot(file, []);
      const loaded = (await model.loadContext(file, { nCtx: 1024, nBatch: 64, kv: { ...kv, valueCap: 256 } })).context;
      assert.equal(loaded.kvMemory().evictedTokens, c.evictedTokens);
      assert.deepEqual(Array.from(loaded.tokens), doc);
      const fork = capped.fork();
      const question = randomTokens(8, model.info.nVocab, 12);
      await capped.prefill(question, undefined, { global: true });
      await loaded.prefill(question, undefined, { global: true });
      const answer = await greedy(capped, 6);
      assert.equal(answer.length, 6);
      assert.deepEqual(await greedy(loaded, 6), answer);
      assert.equal(loaded.kvMemory().evictedTokens, c.evictedTokens);
      assert.equal(fork.kvMemory().evictedTokens, c.evictedTokens);
      assert.throws(() => model.createContext({ kv: { ...kv, valueCap: 50 } }), /value cap of 50 positions .* at least 148/);
      assert.throws(() => model.createContext({ kv: { ...kv, valueCap: 256, eviction: "lru" } }), /mean-mass.*mass.*oldest/);
      for (const x of [capped, open, fork, loaded]) x.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("built-in codebooks are written once to codebookCacheDir and read back by a new model", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hcattn-codebooks-"));
    try {
      const kv = { mode: "12.5%", codebooks: "builtin", calibrationTokens: 128 };
      const tokens = randomTokens(300, 512, 9);
      const run = async () => {
        const model = await engine.Model.load(paths.stories260K, { threads: 2 });
        const ctx = model.createContext({ nCtx: 320, kv, codebookCacheDir: dir });
        await ctx.prefill(tokens);
        const answer = await greedy(ctx, 6);
        ctx.dispose();
        return answer;
      };
      const first = await run();
      const files = readdirSync(dir);
      assert.equal(files.length, 1);
      assert.match(files[0], /^codebooks-[0-9a-f]{32}\.hckv$/);
      assert.deepEqual(await run(), first);
      const model = await engine.Model.load(paths.stories260K, { threads: 2 });
      assert.throws(() => model.createContext({ kv: { mode: "25%", codebooks: "pretrained" } }), /builtin.*workspace/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
