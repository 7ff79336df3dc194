// Fixture models and the engine addon for the engine tests. The fixture files are written at test time
// by our own GGUF writer (dist/fixtures.js, built by `npm run build:ts`) into build/test-data, and kept
// there while their generator is unchanged.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const fixtureDir = process.env.HCATTN_TEST_DATA ?? join(repoRoot, "build", "test-data");

/** Paths of the named fixture files (e.g. "tiny-f32"), writing those that are missing or stale. */
export function ensureFixtures(names) {
  const writer = join(repoRoot, "dist", "fixtures.js");
  if (!existsSync(writer)) {
    throw new Error(`${writer} is missing: run \`npm run build:ts\` first (it bundles the fixture writer)`);
  }
  const r = spawnSync(process.execPath, [writer, fixtureDir, "--only", names.join(",")], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`fixture writer failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  return Object.fromEntries(names.map((n) => [n, join(fixtureDir, `${n}.gguf`)]));
}

/** The engine addon: HCATTN_ADDON, else dist/hcattn.node, else the cmake-js build. */
export function loadEngine() {
  const candidates = [
    process.env.HCATTN_ADDON,
    join(repoRoot, "dist", "hcattn.node"),
    join(repoRoot, "build", "native", "Release", "hcattn.node"),
  ].filter(Boolean);
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`hcattn.node not found (looked in ${candidates.join(", ")}): run \`npm run build\``);
  return createRequire(import.meta.url)(found);
}

/** Deterministic pseudo-random token ids in [0, nVocab) (xorshift32). */
export function randomTokens(n, nVocab, seed) {
  let s = seed >>> 0 || 1;
  const out = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push(s % nVocab);
  }
  return out;
}

/**
 * tiny-f32 with RoPE scaling metadata added: "linear" (factor 4) and "yarn" (factor 4 over an original
 * context of 64, so that positions of a short prompt fall on both sides of YaRN's ramp). Written next to
 * the other fixtures; same weights as tiny-f32.
 */
export function ensureRopeScalingFixtures() {
  const writerPath = join(repoRoot, "dist", "fixtures.js");
  if (!existsSync(writerPath)) {
    throw new Error(`${writerPath} is missing: run \`npm run build:ts\` first (it bundles the fixture writer)`);
  }
  const fx = createRequire(import.meta.url)(writerPath);
  const base = fx.standardFixtures().find((f) => f.file === "tiny-f32.gguf");
  const variants = {
    "tiny-linear4-f32": [
      ["llama.rope.scaling.type", fx.str("linear")],
      ["llama.rope.scaling.factor", fx.f32(4)],
    ],
    "tiny-yarn4-f32": [
      ["llama.rope.scaling.type", fx.str("yarn")],
      ["llama.rope.scaling.factor", fx.f32(4)],
      ["llama.rope.scaling.original_context_length", fx.u32(64)],
    ],
  };
  const out = {};
  for (const [name, extra] of Object.entries(variants)) {
    const path = join(fixtureDir, `${name}.gguf`);
    if (!existsSync(path)) {
      const model = base.build();
      const keys = new Set(extra.map(([k]) => k));
      fx.writeGguf(path, [...model.metadata.filter(([k]) => !keys.has(k)), ...extra], model.tensors);
    }
    out[name] = path;
  }
  return out;
}
