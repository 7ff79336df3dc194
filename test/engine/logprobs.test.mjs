// Our engine against llama.cpp on the same fixture files: natural-log probabilities of every vocabulary
// entry at every position, and greedy continuations. llama.cpp runs with an F32 KV cache and flash
// attention off (FORMATS.md §6.4); so does our engine (its reference full KV cache).
//   F32 weights: max |Δ logprob| ≤ 1e-4 everywhere, and 64 greedy tokens identical.
//   F16 / Q8_0 / Q4_0 / Q4_K / Q6_K weights: max |Δ| ≤ 2e-2 and the same argmax at ≥ 99% of positions.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { ensureFixtures, ensureRopeScalingFixtures, loadEngine, randomTokens } from "./oracle-fixtures.mjs";
import { llamaCppGreedy, llamaCppLogprobs, loadLlamaCppModel } from "./oracle-llamacpp.mjs";

const THREADS = 2;
const F32_FILES = ["tiny-f32", "tiny-rope-freqs-f32", "stories260K"];
const QUANT_FILES = ["tiny-hd128-f16", "tiny-hd128-q8_0", "tiny-hd128-q4_0", "tiny-hd128-q4_k", "tiny-hd128-q6_k"];
const POSITIONS = 48;

// Text for the 128k-vocabulary fixtures, tokenized by llama.cpp so that this test does not depend on ours.
const CODE = `export function clamp(value: number, low: number, high: number): number {
  // Keep the value inside [low, high]; NaN stays NaN.
  return Math.min(high, Math.max(low, value));
}

/** The mean of the finite values, or undefined for none. 平均値 ✓ */
export const mean = (xs: readonly number[]) => {
  const ok = xs.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : undefined;
};
`;

let engine;
let paths;

before(() => {
  engine = loadEngine();
  paths = { ...ensureFixtures([...F32_FILES, ...QUANT_FILES]), ...ensureRopeScalingFixtures() };
});

async function promptFor(name, llamaModel, nVocab) {
  if (nVocab < 1000) return [1, ...randomTokens(POSITIONS - 1, nVocab, 7)];  // placeholder vocabulary
  const ids = [llamaModel.tokens.bos, ...llamaModel.tokenize(CODE)];
  assert.ok(ids.length >= POSITIONS, `${name}: prompt has only ${ids.length} tokens`);
  return ids.slice(0, POSITIONS);
}

/** Compares both engines on one file; returns {maxDelta, argmaxAgreement, positions}. */
async function compareLogprobs(name, kv = "f32") {
  const llamaModel = await loadLlamaCppModel(paths[name]);
  const ours = await engine.Model.load(paths[name], { threads: THREADS });
  try {
    const nVocab = ours.info.nVocab;
    const tokens = await promptFor(name, llamaModel, nVocab);
    const theirs = await llamaCppLogprobs(llamaModel, tokens, { threads: THREADS, kv: kv.toUpperCase() });
    assert.equal(theirs.nVocab, nVocab, `${name}: vocabulary sizes differ`);
    const ctx = ours.createContext({ nCtx: tokens.length, kvType: kv });
    const mine = await ctx.evalLogits(tokens, 1, { full: true });
    ctx.dispose();
    let maxDelta = 0;
    let worst = null;
    let agree = 0;
    for (let pos = 0; pos < tokens.length; pos++) {
      let bestOurs = 0;
      let bestTheirs = 0;
      for (let id = 0; id < nVocab; id++) {
        const a = mine.logprobs[pos * nVocab + id];
        const b = theirs.logprobs[pos * nVocab + id];
        if (a > mine.logprobs[pos * nVocab + bestOurs]) bestOurs = id;
        if (b > theirs.logprobs[pos * nVocab + bestTheirs]) bestTheirs = id;
        // Below e^-69 llama.cpp's float32 probabilities are subnormal or zero: only require both tiny.
        if (b < -69) {
          assert.ok(a < -60, `${name} pos ${pos} id ${id}: llama.cpp log p ${b}, ours ${a}`);
          continue;
        }
        const d = Math.abs(a - b);
        if (d > maxDelta) {
          maxDelta = d;
          worst = { pos, id, ours: a, theirs: b };
        }
      }
      if (bestOurs === bestTheirs) agree++;
    }
    const result = { maxDelta, argmaxAgreement: agree / tokens.length, positions: tokens.length, worst };
    console.log(
      `${name}${kv === "f32" ? "" : ` (${kv} KV)`}: ${tokens.length} positions × ${nVocab} tokens, max |Δ logprob| = ${maxDelta.toExponential(3)}, ` +
        `argmax agreement ${(100 * result.argmaxAgreement).toFixed(1)}%` +
        (worst ? ` (worst at pos ${worst.pos}, id ${worst.id}: ours ${worst.ours.toFixed(6)}, llama.cpp ${worst.theirs.toFixed(6)})` : ""),
    );
    return result;
  } finally {
    await llamaModel.dispose();
  }
}

describe("log-probabilities at every position, full vocabulary, against llama.cpp", () => {
  for (const name of F32_FILES) {
    test(`${name}: max |Δ| ≤ 1e-4`, async () => {
      const r = await compareLogprobs(name);
      assert.ok(r.maxDelta <= 1e-4, `${name}: max |Δ logprob| ${r.maxDelta} > 1e-4 (${JSON.stringify(r.worst)})`);
      assert.equal(r.argmaxAgreement, 1);
    });
  }
  for (const name of QUANT_FILES) {
    test(`${name}: max |Δ| ≤ 2e-2, same argmax at ≥ 99% of positions`, async () => {
      const r = await compareLogprobs(name);
      assert.ok(r.maxDelta <= 2e-2, `${name}: max |Δ logprob| ${r.maxDelta} > 2e-2 (${JSON.stringify(r.worst)})`);
      assert.ok(r.argmaxAgreement >= 0.99, `${name}: argmax agrees at only ${(100 * r.argmaxAgreement).toFixed(1)}%`);
    });
  }
});

describe("RoPE scaling from metadata (linear, YaRN) against llama.cpp", () => {
  for (const name of ["tiny-linear4-f32", "tiny-yarn4-f32"]) {
    test(`${name}: max |Δ| ≤ 1e-4`, async () => {
      const r = await compareLogprobs(name);
      assert.ok(r.maxDelta <= 1e-4, `${name}: max |Δ logprob| ${r.maxDelta} > 1e-4 (${JSON.stringify(r.worst)})`);
    });
  }
});

// Our F16 cache rounds K, V, Q and P to half where llama.cpp's does without flash attention (FORMATS §6.2).
// On stories260K (head size 8) the difference is larger (3.7e-3 measured) and not yet explained: llama.cpp
// picks different matmul kernels for such small heads, which may round Q or P elsewhere.
describe("F16 KV cache against llama.cpp's F16 cache (flash attention off)", () => {
  for (const [name, bound] of [["tiny-f32", 1e-4], ["stories260K", 1e-2]]) {
    test(`${name}: max |Δ| ≤ ${bound}`, async () => {
      const r = await compareLogprobs(name, "f16");
      assert.ok(r.maxDelta <= bound, `${name}: max |Δ logprob| ${r.maxDelta} > ${bound} (${JSON.stringify(r.worst)})`);
      assert.equal(r.argmaxAgreement, 1);
    });
  }
});

describe("64 greedy tokens identical to llama.cpp", () => {
  for (const name of F32_FILES) {
    test(name, async () => {
      const llamaModel = await loadLlamaCppModel(paths[name]);
      const ours = await engine.Model.load(paths[name], { threads: THREADS });
      try {
        const prompt = (await promptFor(name, llamaModel, ours.info.nVocab)).slice(0, 12);
        const theirs = await llamaCppGreedy(llamaModel, prompt, 64, { threads: THREADS });
        const ctx = ours.createContext({ nCtx: prompt.length + 65, kvType: "f32" });
        await ctx.prefill(prompt);
        const streamed = [];
        const r = await ctx.generate({ maxTokens: 64, sampling: { temperature: 0 } }, (_text, id) => id >= 0 && streamed.push(id));
        ctx.dispose();
        const mine = Array.from(r.tokens);
        assert.deepEqual(streamed, mine, "streamed ids equal the returned ones");
        if (r.stopReason === "eog") {
          // We stop at an end-of-generation token; llama.cpp's raw evaluation continues past it.
          assert.ok(ours.isEndOfGeneration(theirs[mine.length]), `${name}: we stopped, llama.cpp went on with ${theirs[mine.length]}`);
          assert.deepEqual(mine, theirs.slice(0, mine.length));
        } else {
          assert.equal(mine.length, 64);
          assert.deepEqual(mine, theirs);
        }
        console.log(`${name}: ${mine.length} greedy tokens identical (stop: ${r.stopReason})`);
      } finally {
        await llamaModel.dispose();
      }
    });
  }
});


describe("engine contexts through the addon", () => {
  test("cancel() stops a running generation; a fork continues like the original; a busy context refuses", async () => {
    const ours = await engine.Model.load(paths["tiny-f32"], { threads: THREADS });
    const prompt = [128000, 791, 4062, 14198, 39935];
    const ctx = ours.createContext({ nCtx: 1100 });
    await ctx.prefill(prompt);
    const copy = ctx.fork();
    let seen = 0;
    const r = await ctx.generate({ maxTokens: 1000, sampling: { temperature: 0 } }, () => {
      if (++seen === 3) ctx.cancel();
    });
    assert.equal(r.stopReason, "cancelled");
    // Tokens stream to JS asynchronously, so the engine may be a few tokens ahead when cancel() lands.
    assert.ok(r.tokens.length >= 3 && r.tokens.length < 1000, `generated ${r.tokens.length} tokens after cancel at 3`);
    const running = copy.generate({ maxTokens: 3, sampling: { temperature: 0 } });
    assert.throws(() => copy.generate({ maxTokens: 1 }), /busy/);
    const again = await running;
    assert.deepEqual(Array.from(again.tokens), Array.from(r.tokens).slice(0, 3), "the fork continues like the original");
    ctx.dispose();
    copy.dispose();
    assert.throws(() => ctx.nPast, /disposed/);
  });

  test("stop strings end the text before them; the streamed pieces add up to the returned text", async () => {
    const ours = await engine.Model.load(paths["tiny-f32"], { threads: THREADS });
    const prompt = [128000, 791, 4062, 14198, 39935];
    const run = async (stop) => {
      const ctx = ours.createContext({ nCtx: 64 });
      await ctx.prefill(prompt);
      let streamed = "";
      const r = await ctx.generate({ maxTokens: 24, sampling: { temperature: 0 }, stop }, (text) => (streamed += text));
      ctx.dispose();
      assert.equal(streamed, r.text);
      return r;
    };
    const free = await run([]);
    assert.ok(free.text.length > 12, `greedy text too short for the test: ${JSON.stringify(free.text)}`);
    const stop = free.text.slice(8, 11);
    const cut = free.text.indexOf(stop);
    const stopped = await run([stop]);
    assert.equal(stopped.stopReason, "stop");
    assert.equal(stopped.text, free.text.slice(0, cut));
  });
});
