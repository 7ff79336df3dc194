// The fixture writer against llama.cpp (node-llama-cpp, the project's oracle): every file we write loads
// and evaluates; quantized blocks mean to llama.cpp exactly what our dequantizer says; the scripted model's
// greedy output is its script; stories260K's conversion reproduces an independent forward pass.
// Fixtures go to build/test-data, shared with the other engine tests (kept between runs; the manifest skips up-to-date files).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { getLlama, LlamaLogLevel, readGgufFileInfo } from "node-llama-cpp";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bundlePath = join(root, "dist/fixtures.js");
const fixtureDir = join(root, "build/test-data");
// One thread: on a busy 2-core machine llama.cpp's spinning worker threads make a 20-token run of a
// 260K-parameter model take a minute instead of milliseconds.
const ORACLE_THREADS = 1;

/** dist/fixtures.js as esbuild.mjs builds it, rebuilt here when a source is newer (tests must not run stale code). */
function loadGenerator() {
  const sources = readdirSync(join(root, "test/fixtures")).filter((f) => f.endsWith(".ts"));
  const newest = Math.max(...sources.map((f) => statSync(join(root, "test/fixtures", f)).mtimeMs));
  if (!existsSync(bundlePath) || statSync(bundlePath).mtimeMs < newest) {
    esbuild.buildSync({
      bundle: true, platform: "node", format: "cjs", target: "node20", sourcemap: true, external: ["vscode", "*.node"],
      entryPoints: { fixtures: join(root, "test/fixtures/cli.ts") }, outdir: join(root, "dist"), logLevel: "warning",
    });
  }
  return createRequire(import.meta.url)(bundlePath);
}

const fx = loadGenerator();
let llama;
before(async () => {
  llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
});
after(async () => {
  await llama?.dispose();
});

/** Natural-log probabilities of the next token after every position of `tokens` (full vocabulary). */
async function logprobsAt(modelPath, tokens) {
  const model = await llama.loadModel({ modelPath });
  try {
    const context = await model.createContext({ contextSize: 256, threads: ORACLE_THREADS });
    const out = await context.getSequence().controlledEvaluate(tokens.map((t) => [t, { generateNext: { probabilities: true } }]));
    await context.dispose();
    return out.map((o) => {
      const lp = new Float64Array(model.fileInsights.vocabularySize ?? o.next.probabilities.size);
      for (const [id, p] of o.next.probabilities) lp[id] = Math.log(p);
      return lp;
    });
  } finally {
    await model.dispose();
  }
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a[i].length; j++) m = Math.max(m, Math.abs(a[i][j] - b[i][j]));
  return m;
}

async function greedy(modelPath, promptTokens, maxTokens) {
  const model = await llama.loadModel({ modelPath });
  try {
    const context = await model.createContext({ contextSize: 512, threads: ORACLE_THREADS });
    const out = [];
    for await (const t of context.getSequence().evaluate(promptTokens, { temperature: 0 })) {
      if (model.isEogToken(t) || out.length >= maxTokens) break;
      out.push(t);
    }
    await context.dispose();
    return { tokens: out, text: model.detokenize(out) };
  } finally {
    await model.dispose();
  }
}

describe("half-precision conversions", () => {
  test("F32 → F16 rounds to nearest even, with subnormals, overflow and NaN", () => {
    const cases = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66], [-0, 0x8000],
    ];
    for (const [x, bits] of cases) assert.equal(fx.f32ToF16(x), bits, `f32ToF16(${x})`);
    assert.equal(fx.f32ToF16(NaN) & 0x7e00, 0x7e00);
    for (let h = 0; h < 0x7c00; h += 7) assert.equal(fx.f32ToF16(fx.f16ToF32(h)), h, `half ${h} round trip`);
  });

  test("F32 → BF16 rounds to nearest even", () => {
    assert.equal(fx.f32ToBf16(1), 0x3f80);
    assert.equal(fx.f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even
    assert.equal(fx.f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
    assert.equal(fx.bf16ToF32(0x4049), 3.140625);
  });
});

describe("quantizers", () => {
  const { GgmlType } = fx;
  // Relative RMS error of quantize → dequantize on N(0, 1) data; bounds ~1.5× what each format achieves.
  const bounds = { F16: 3e-4, BF16: 3e-3, Q8_0: 0.012, Q6_K: 0.03, Q5_K: 0.05, Q4_K: 0.1, Q4_0: 0.13 };
  for (const [name, bound] of Object.entries(bounds)) {
    test(`${name} round-trips within ${bound} relative RMS error`, () => {
      const x = new Float32Array(256 * 64);
      new fx.Rng(7).fillNormal(x, 0, 1);
      x[5] = 9; // an outlier inside one block
      const type = GgmlType[name];
      const bytes = fx.quantize(type, x);
      assert.equal(bytes.length, fx.tensorBytes(type, [x.length]));
      const y = fx.dequantize(type, bytes, x.length);
      let err = 0;
      let ref = 0;
      for (let i = 0; i < x.length; i++) {
        err += (x[i] - y[i]) ** 2;
        ref += x[i] ** 2;
      }
      const rel = Math.sqrt(err / ref);
      assert.ok(rel < bound, `${name}: relative RMS error ${rel.toFixed(5)} ≥ ${bound}`);
      assert.ok(rel > bound / 100 || name === "F16", `${name}: error ${rel} is implausibly small (was anything quantized?)`);
    });
  }

  test("Q8_0 and Q4_0 blocks have the documented bytes", () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => j - 16); // max |x| = 16 at j = 0
    const q8 = fx.quantize(GgmlType.Q8_0, x);
    assert.ok(Math.abs(fx.f16ToF32(q8[0] | (q8[1] << 8)) - 16 / 127) < 1e-4); // d = max|x| / 127
    assert.equal(new Int8Array(q8.buffer)[2], -127);
    assert.equal(new Int8Array(q8.buffer)[2 + 16], 0);
    const q4 = fx.quantize(GgmlType.Q4_0, x);
    assert.equal(fx.f16ToF32(q4[0] | (q4[1] << 8)), 2); // d = max / -8 = -16 / -8
    assert.equal(q4[2] & 15, 0); // x[0] = -16 → -8 → nibble 0
    assert.equal(q4[2] >> 4, 8); // x[16] = 0 → nibble 8
    assert.equal(q4[17] >> 4, 15); // x[31] = 15 → 7.5 → clamped 15
  });
});

describe("llama.cpp reads our blocks as our dequantizer does", () => {
  // Small models (vocabulary 512) written twice: with some weights in the type under test, and as an F32
  // twin holding exactly our dequantized values of those weights.
  // - Embedding only: llama.cpp dequantizes token_embd rows directly (get_rows, no activation rounding) and
  //   everything else is F32, so the two files must agree to float rounding; a wrong block layout would
  //   scramble the embedding and move log-probabilities by whole units.
  // - All matrices: llama.cpp's matrix products also round activations to 8 or 16 bits, so the twins agree
  //   only to a few tenths at worst; still far below what a misread layout gives (printed for comparison:
  //   the distance to the original, unquantized weights).
  const hp = { nVocab: 512, nCtx: 256, nEmbd: 256, nLayer: 1, nHead: 2, nHeadKv: 1, nFf: 512, ropeBase: 10000, rmsEps: 1e-5 };
  const tokens = [1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314];
  const types = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q4_0"];
  let dir;
  let original; // log-probabilities of the unquantized model: the same weights for every type (same seed)
  const originalLogprobs = async (path) => (original ??= await logprobsAt(path, tokens));
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "fixtures-twins-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes the model with `quantized(name)` tensors in `typeName`, its dequantized twin and its original F32. */
  function writeTwins(typeName, quantized) {
    const type = fx.GgmlType[typeName];
    const rng = new fx.Rng(fx.seedFrom("twin"));
    const files = { quant: [], twin: [], original: [] };
    const add = (name, dims, std, mean = 0) => {
      const x = new Float32Array(dims.reduce((a, b) => a * b, 1));
      rng.fillNormal(x, mean, std);
      files.original.push(fx.dataTensor(name, dims, fx.GgmlType.F32, x));
      if (dims.length === 2 && quantized(name)) {
        const bytes = fx.quantize(type, x);
        files.quant.push({ name, type, dims, write: (emit) => emit(bytes) });
        files.twin.push(fx.dataTensor(name, dims, fx.GgmlType.F32, fx.dequantize(type, bytes, x.length)));
      } else {
        files.quant.push(fx.dataTensor(name, dims, fx.GgmlType.F32, x));
        files.twin.push(fx.dataTensor(name, dims, fx.GgmlType.F32, x));
      }
    };
    const e = hp.nEmbd;
    add("token_embd.weight", [e, hp.nVocab], 1);
    add("blk.0.attn_norm.weight", [e], 0.1, 1);
    add("blk.0.attn_q.weight", [e, e], 1 / Math.sqrt(e));
    add("blk.0.attn_k.weight", [e, e / 2], 1 / Math.sqrt(e));
    add("blk.0.attn_v.weight", [e, e / 2], 1 / Math.sqrt(e));
    add("blk.0.attn_output.weight", [e, e], 1 / Math.sqrt(e));
    add("blk.0.ffn_norm.weight", [e], 0.1, 1);
    add("blk.0.ffn_gate.weight", [e, hp.nFf], 1 / Math.sqrt(e));
    add("blk.0.ffn_up.weight", [e, hp.nFf], 1 / Math.sqrt(e));
    add("blk.0.ffn_down.weight", [hp.nFf, e], 1 / Math.sqrt(hp.nFf));
    add("output_norm.weight", [e], 0.1, 1);
    add("output.weight", [e, hp.nVocab], 3 / Math.sqrt(e));
    const metadata = [...fx.llamaMetadata("twin", hp, fx.fileTypeOf(type)), ...fx.placeholderSpmVocab(hp.nVocab)];
    const paths = {};
    for (const [kind, tensors] of Object.entries(files)) {
      paths[kind] = join(dir, `twin-${typeName}-${kind}.gguf`);
      fx.writeGguf(paths[kind], metadata, tensors);
    }
    return paths;
  }

  for (const typeName of types) {
    test(`${typeName}: token_embd rows read by llama.cpp equal our dequantized values`, async (t) => {
      const paths = writeTwins(typeName, (name) => name === "token_embd.weight");
      const quant = await logprobsAt(paths.quant, tokens);
      const delta = maxAbsDiff(quant, await logprobsAt(paths.twin, tokens));
      const vsOriginal = maxAbsDiff(quant, await originalLogprobs(paths.original));
      t.diagnostic(`${typeName} embedding: max |Δ logprob| vs dequantized twin ${delta.toExponential(2)}, vs unquantized ${vsOriginal.toExponential(2)}`);
      assert.ok(delta < 1e-4, `${typeName}: llama.cpp reads other values than our dequantizer: max |Δ| ${delta}`);
    });
  }

  const matmulBounds = { F16: 0.02, BF16: 0.1, Q8_0: 0.3, Q6_K: 0.3, Q5_K: 0.3, Q4_K: 0.3, Q4_0: 0.3 };
  for (const typeName of types) {
    test(`${typeName}: all matrices — llama.cpp matches the dequantized twin within ${matmulBounds[typeName]}`, async (t) => {
      const paths = writeTwins(typeName, () => true);
      const quant = await logprobsAt(paths.quant, tokens);
      const delta = maxAbsDiff(quant, await logprobsAt(paths.twin, tokens));
      const vsOriginal = maxAbsDiff(quant, await originalLogprobs(paths.original));
      t.diagnostic(`${typeName} all matrices: max |Δ logprob| vs dequantized twin ${delta.toExponential(2)}, vs unquantized ${vsOriginal.toExponential(2)}`);
      assert.ok(delta < matmulBounds[typeName], `${typeName}: max |Δ| ${delta} ≥ ${matmulBounds[typeName]}`);
    });
  }
});

describe("fixture models in llama.cpp", () => {
  let results;
  before(() => {
    const started = Date.now();
    results = fx.writeFixtures(fixtureDir, fx.selectFixtures({}));
    const written = results.filter((r) => !r.skipped).length;
    console.log(`# fixtures: ${results.length} files in ${fixtureDir} (${written} written) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  test("every default fixture loads and evaluates to a finite distribution", async (t) => {
    const llama3Files = results.filter((r) => r.file !== "stories260K.gguf");
    assert.ok(llama3Files.length >= 8, `expected tiny-*, scripted fixtures, got ${results.map((r) => r.file)}`);
    for (const r of results) {
      const info = await readGgufFileInfo(r.path, { logWarnings: false });
      assert.equal(info.metadata.general.architecture, "llama", r.file);
      const model = await llama.loadModel({ modelPath: r.path });
      try {
        const isLlama3 = r.file !== "stories260K.gguf";
        if (isLlama3) {
          assert.deepEqual(model.tokenize("Hello world"), [9906, 1917], `${r.file}: Llama-3 vocabulary`);
          assert.equal(model.tokens.bos, 128000);
          assert.equal(model.tokens.eos, 128009);
        } else {
          assert.equal(model.tokens.bos, 1);
        }
        const prompt = isLlama3 ? [128000, ...model.tokenize("The quick brown fox")] : [1, 300, 301, 302];
        const context = await model.createContext({ contextSize: 256, threads: ORACLE_THREADS });
        const out = await context.getSequence().controlledEvaluate(prompt.map((tok) => [tok, { generateNext: { probabilities: true } }]));
        await context.dispose();
        const vocab = isLlama3 ? 128256 : 512;
        for (const o of out) {
          const probs = [...o.next.probabilities.values()];
          assert.equal(probs.length, vocab, `${r.file}: distribution over the whole vocabulary`);
          assert.ok(probs.every(Number.isFinite), `${r.file}: finite probabilities`);
          const sum = probs.reduce((a, b) => a + b, 0);
          assert.ok(Math.abs(sum - 1) < 1e-3, `${r.file}: probabilities sum to ${sum}`);
        }
        const [topId, topP] = out.at(-1).next.probabilities.entries().next().value;
        t.diagnostic(
          `${r.file}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.skipped ? "kept" : `written in ${r.seconds.toFixed(2)} s`}; ` +
            `${info.tensorInfo.length} tensors; llama.cpp: vocab ${vocab}, next after ${prompt.length} tokens: id ${topId} p=${topP.toFixed(4)}`,
        );
      } finally {
        await model.dispose();
      }
    }
  });

  test("tiny-rope-freqs-f32: Llama-3.1 factors stored, same weights as tiny-f32, used by llama.cpp", async () => {
    const path = join(fixtureDir, "tiny-rope-freqs-f32.gguf");
    const info = await readGgufFileInfo(path, { logWarnings: false });
    const t = info.tensorInfo.find((x) => x.name === "rope_freqs.weight");
    assert.deepEqual(t.dimensions.map(Number), [8]);
    const raw = readFileSync(path).subarray(Number(t.fileOffset), Number(t.fileOffset) + 32);
    const stored = Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + 32)));
    // Independent double-precision evaluation of the Llama-3.1 rule (head_dim 16, base 500000).
    const expected = [];
    for (let k = 0; k < 8; k++) {
      const wavelen = (2 * Math.PI) / (1 / 500000 ** ((2 * k) / 16));
      if (wavelen < 8192 / 4) expected.push(1);
      else if (wavelen > 8192) expected.push(8);
      else {
        const smooth = (8192 / wavelen - 1) / (4 - 1);
        expected.push(1 / ((1 - smooth) / 8 + smooth));
      }
    }
    for (let k = 0; k < 8; k++) assert.ok(Math.abs(stored[k] - expected[k]) < 1e-5 * expected[k], `factor ${k}: ${stored[k]} vs ${expected[k]}`);
    assert.ok(stored[4] > 1 && stored[4] < 8, "one pair is in the blended band");
    const tokens = [128000, 791, 4062, 14198, 39935, 35308, 927, 279];
    const withFreqs = await logprobsAt(path, tokens);
    const without = await logprobsAt(join(fixtureDir, "tiny-f32.gguf"), tokens);
    assert.ok(maxAbsDiff([withFreqs[0]], [without[0]]) < 1e-4, "position 0 has no rotation: same weights give the same output");
    assert.ok(maxAbsDiff(withFreqs.slice(2), without.slice(2)) > 1e-3, "llama.cpp applies rope_freqs at later positions");
  });

  test("scripted.gguf: llama.cpp's greedy answer is the script", async () => {
    const prompt =
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhere does the server start?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n";
    const model = await llama.loadModel({ modelPath: join(fixtureDir, "scripted.gguf") });
    const promptTokens = model.tokenize(prompt, true);
    await model.dispose();
    const { text } = await greedy(join(fixtureDir, "scripted.gguf"), promptTokens, 200);
    assert.equal(text, fx.DEFAULT_SCRIPT);
    assert.match(text, /src\/index\.ts:3/);
    assert.match(text, /<img src=x onerror=alert\(1\)>/);
  });

  test("stories260K.gguf: llama.cpp's greedy ids equal an independent llama2.c-style forward pass", async () => {
    // Reference: a float64 NumPy implementation of llama2.c's run.c forward pass on stories260K.bin, greedy
    // from BOS (token 1), 20 tokens.
    const reference = [461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13];
    const { tokens } = await greedy(join(fixtureDir, "stories260K.gguf"), [1], reference.length);
    assert.deepEqual(tokens, reference);
  });
});

describe("generator", () => {
  let dir;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "fixtures-gen-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a custom script: greedy output equals it; an impossible one names where it is stuck", async () => {
    const script = "See `lib/util.js:42` — it returns <b>bold</b> & more.";
    const [r] = fx.writeFixtures(dir, [fx.scriptedFixture(script)]);
    const { text } = await greedy(r.path, [128000, 128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271], 100);
    assert.equal(text, script);
    assert.throws(() => fx.scriptTokens("1 1 1 1 1 1"), /cannot be cut.*stuck near/);
  });

  test("the manifest keeps up-to-date files and rewrites changed ones", () => {
    const first = fx.writeFixtures(dir, [fx.scriptedFixture("Alpha beta."), fx.scriptedFixture("Alpha beta.")].slice(0, 1));
    assert.equal(first[0].skipped, false);
    const again = fx.writeFixtures(dir, [fx.scriptedFixture("Alpha beta.")]);
    assert.equal(again[0].skipped, true);
    const changed = fx.writeFixtures(dir, [fx.scriptedFixture("Gamma delta.")]);
    assert.equal(changed[0].skipped, false);
    const manifest = JSON.parse(readFileSync(join(dir, "fixtures-manifest.json"), "utf8"));
    assert.equal(manifest["scripted.gguf"].bytes, statSync(join(dir, "scripted.gguf")).size);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".tmp-")), [], "no temporary files left");
  });

  test("every metadata value type, tensor offsets and padding read back with node-llama-cpp's GGUF parser", async () => {
    const { GgufValueType: V, GgmlType: T } = fx;
    const metadata = [
      ["general.architecture", fx.str("llama")],
      ["t.u8", fx.u8(200)], ["t.i8", fx.i8(-100)], ["t.u16", fx.u16(60000)], ["t.i16", fx.i16(-30000)],
      ["t.u32", fx.u32(4000000000)], ["t.i32", fx.i32(-2000000000)], ["t.f32", fx.f32(1.5)], ["t.bool", fx.bool(true)],
      ["t.str", fx.str("héllo ✓")], ["t.u64", fx.u64(2n ** 40n)], ["t.i64", fx.i64(-(2n ** 40n))], ["t.f64", fx.f64(0.1)],
      ["t.arr_str", fx.arr(V.STRING, ["a", "", "ü b"])], ["t.arr_i32", fx.arr(V.INT32, [1, -2, 3])],
      ["t.arr_f32", fx.arr(V.FLOAT32, [0.5, -0.25])],
    ];
    const odd = Float32Array.from([1, 2, 3]);
    const block = Float32Array.from({ length: 64 }, (_, i) => i / 8);
    const tensors = [
      fx.dataTensor("odd", [3], T.F32, odd),
      fx.dataTensor("q", [32, 2], T.Q8_0, block),
      fx.dataTensor("h", [5], T.F16, Float32Array.from([1, 2, 3, 4, 5])),
    ];
    const path = join(dir, "types.gguf");
    const size = fx.writeGguf(path, metadata, tensors);
    const info = await readGgufFileInfo(path, { logWarnings: false });
    const m = info.metadata;
    assert.equal(m.t.u8, 200); assert.equal(m.t.i8, -100); assert.equal(m.t.u16, 60000); assert.equal(m.t.i16, -30000);
    assert.equal(m.t.u32, 4000000000); assert.equal(m.t.i32, -2000000000); assert.equal(m.t.f32, 1.5); assert.equal(m.t.bool, true);
    assert.equal(m.t.str, "héllo ✓"); assert.equal(BigInt(m.t.u64), 2n ** 40n); assert.equal(BigInt(m.t.i64), -(2n ** 40n));
    assert.equal(m.t.f64, 0.1);
    assert.deepEqual(m.t.arr_str, ["a", "", "ü b"]); assert.deepEqual(m.t.arr_i32, [1, -2, 3]); assert.deepEqual(m.t.arr_f32, [0.5, -0.25]);
    assert.deepEqual(info.tensorInfo.map((x) => [x.name, Number(x.offset), x.ggmlType]), [["odd", 0, 0], ["q", 32, 8], ["h", 32 + 96, 1]]);
    const bytes = readFileSync(path);
    const start = Number(info.tensorInfo[0].fileOffset);
    assert.equal(start % 32, 0);
    assert.deepEqual(Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + start + 12))), [1, 2, 3]);
    assert.deepEqual(Array.from(bytes.subarray(start + 12, start + 32)), new Array(20).fill(0), "padding is zeros");
    const q = bytes.subarray(start + 32, start + 32 + 68);
    assert.deepEqual(Array.from(fx.dequantize(T.Q8_0, q, 64)), Array.from(fx.dequantize(T.Q8_0, fx.quantize(T.Q8_0, block), 64)));
    assert.equal(size, start + 32 + 96 + 32, "file ends after the last tensor's padded data");
  });
});
