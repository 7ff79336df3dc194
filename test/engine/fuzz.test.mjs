// The GGUF reader under libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer for 30 s,
// starting from generated valid files: any crash, out-of-bounds read, leak, oversized allocation or
// undefined behaviour fails the test. Skipped, with the reason printed, where clang with libFuzzer is
// not installed (`apt-get install clang libclang-rt-14-dev` on Debian 12).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import { ggufSeeds, probeToolchain, runFuzzer } from "../../scripts/fuzz.mjs";

const missing = probeToolchain();
if (missing) console.log(`fuzz test skipped: ${missing}`);

test("generated GGUF seeds are valid files for llama.cpp's own GGUF reader", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gguf-seeds-"));
  try {
    const seeds = ggufSeeds();
    assert.deepEqual(Object.keys(seeds).sort(), ["empty.gguf", "metadata.gguf", "tensors.gguf", "v2-align64.gguf"]);
    const info = {};
    for (const [name, bytes] of Object.entries(seeds)) {
      fs.writeFileSync(path.join(dir, name), bytes);
      info[name] = await readGgufFileInfo(path.join(dir, name), { readTensorInfo: true, logWarnings: false });
    }
    assert.equal(Number(info["empty.gguf"].tensorCount), 0);
    const meta = info["metadata.gguf"].metadata;
    assert.equal(meta.general.architecture, "llama");
    assert.equal(meta.t.u32, 4000000000);
    assert.equal(meta.t.i16, -300);
    assert.deepEqual(meta.tokenizer.ggml.tokens, ["<|begin_of_text|>", "a", "\u0120the", ""]);
    const tensors = info["tensors.gguf"].tensorInfo.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType]);
    assert.deepEqual(tensors, [
      ["token_embd.weight", [4, 2], 0],
      ["output_norm.weight", [8], 1],
      ["rope_freqs.weight", [4], 30],
      ["blk.0.attn_q.weight", [32, 2], 8],
      ["blk.0.attn_k.weight", [32, 1, 2], 2],
      ["blk.0.ffn_up.weight", [256], 12],
      ["blk.0.ffn_gate.weight", [256], 13],
      ["blk.0.ffn_down.weight", [256, 1, 1, 1], 14],
      ["blk.0.attn_v.weight", [256], 10],
    ]);
    assert.equal(info["v2-align64.gguf"].version, 2);
    assert.deepEqual(info["v2-align64.gguf"].tensorInfo.map((t) => Number(t.offset)), [0, 64]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("GGUF reader survives 30 s of libFuzzer + ASan/UBSan", { skip: missing ?? false, timeout: 15 * 60 * 1000 }, async () => {
  const r = await runFuzzer({ target: "gguf", seconds: 30, log: () => {} });
  console.log(
    `fuzz_gguf: ${r.execs} executions in ${r.seconds.toFixed(1)} s (${r.execsPerSecond}/s), peak RSS ${r.peakRssMb} MB`,
  );
  assert.ok(r.ok, `the fuzzer found a failure (exit ${r.exitCode}; artifacts: ${r.artifacts.join(", ") || "none"}):\n${r.tail}`);
  assert.ok(r.execs > 1000, `only ${r.execs} executions in 30 s; the target is far slower than expected`);
});
