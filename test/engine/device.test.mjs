// Device selection through the addon and the CLI on a machine without a usable CUDA GPU (every CI
// machine): "auto" runs on the CPU with no note, an explicit "cuda" loads on the CPU with one line that
// says why (in info.deviceNote and on the CLI's stderr), an unknown device is refused. On a machine with a
// GPU the CUDA side is covered by the native ctest test_cuda_model instead, so these tests skip there.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { buildDist } from "../unit/support/engine-client.mjs";
import { ensureFixtures, loadEngine, repoRoot } from "./oracle-fixtures.mjs";

const addon = loadEngine();
const gpu = addon.buildInfo().cudaDevices > 0;
const work = mkdtempSync(join(tmpdir(), "repo-llama-device-"));
after(() => rmSync(work, { recursive: true, force: true }));
let model;
before(() => {
  buildDist();
  model = ensureFixtures(["tiny-f32"])["tiny-f32"];
});

const FALLBACK = "CUDA requested but not available, running on the CPU: ";

test("auto and cpu run on the CPU without a note; info names the device", { skip: gpu && "a CUDA GPU is usable here" }, async () => {
  for (const device of [undefined, "auto", "cpu"]) {
    const m = await addon.Model.load(model, { threads: 1, ...(device && { device }) });
    assert.equal(m.info.device, "cpu", `device ${device}`);
    assert.equal(m.info.deviceNote, "", `device ${device}`);
    assert.match(m.info.deviceName, /^CPU \((avx512|avx2|scalar), 1 threads\)$/);
  }
});

test("cuda without a usable GPU loads on the CPU and says why in one line", { skip: gpu && "a CUDA GPU is usable here" }, async () => {
  const m = await addon.Model.load(model, { threads: 1, device: "cuda" });
  assert.equal(m.info.device, "cpu");
  assert.ok(m.info.deviceNote.startsWith(FALLBACK), m.info.deviceNote);
  assert.ok(m.info.deviceNote.length > FALLBACK.length + 10, "the reason follows");
  assert.ok(!m.info.deviceNote.includes("\n"));
  // The fallback model computes: the same logits as a model loaded on the CPU.
  const cpu = await addon.Model.load(model, { threads: 1, device: "cpu" });
  const tokens = [1, 500, 2000, 30000];
  const a = await m.createContext({ nCtx: 16 }).evalLogits(tokens, 3);
  const b = await cpu.createContext({ nCtx: 16 }).evalLogits(tokens, 3);
  assert.deepEqual(a.top, b.top);
});

test("gpuMemory() gives the GPU's free and total bytes, and nothing without a usable CUDA device", () => {
  const memory = addon.gpuMemory();
  if (!gpu) {
    assert.equal(memory, undefined, `buildInfo: ${JSON.stringify(addon.buildInfo())}`);
    return;
  }
  assert.ok(memory.totalBytes > 2 ** 30, JSON.stringify(memory));
  assert.ok(memory.freeBytes > 0 && memory.freeBytes <= memory.totalBytes, JSON.stringify(memory));
});

test("an unknown device is refused with the choices", async () => {
  // A wrong type is refused before any work is queued (thrown), a wrong name by the engine (rejected).
  await assert.rejects(async () => addon.Model.load(model, { device: "gpu" }), /device must be "auto", "cpu" or "cuda", got "gpu"/);
  await assert.rejects(async () => addon.Model.load(model, { device: 1 }), /device must be/);
});

test("repo-llama eval --device cuda falls back with one stderr line; --device gpu is a usage error", { skip: gpu && "a CUDA GPU is usable here" }, () => {
  const tokens = join(work, "tokens.json");
  writeFileSync(tokens, "[1, 500, 2000]");
  const cli = join(repoRoot, "dist", "cli.js");
  const run = (...args) => spawnSync(process.execPath, [cli, "eval", "--model", model, "--tokens-file", tokens, "--threads", "1", ...args], { encoding: "utf8" });
  const fallback = run("--device", "cuda");
  assert.equal(fallback.status, 0, fallback.stderr);
  assert.equal(fallback.stdout.trim().split("\n").length, 3);
  const lines = fallback.stderr.trim().split("\n");
  assert.equal(lines.length, 1, fallback.stderr);
  assert.ok(lines[0].startsWith(`repo-llama: ${FALLBACK}`), lines[0]);
  const auto = run("--device", "auto");
  assert.equal(auto.status, 0, auto.stderr);
  assert.equal(auto.stderr, "");
  assert.deepEqual(auto.stdout, fallback.stdout);
  const bad = run("--device", "gpu");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--device must be auto, cpu or cuda, got "gpu"/);
});
