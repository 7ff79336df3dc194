// Compiles the mocha suite (test/vscode/suite/*.ts) for the extension host. The output goes under the
// repository's out/ so that the suite's require("mocha") resolves from the project's node_modules.
import { readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const SUITE_OUT = join(REPO, "out", "test", "vscode");
const SUITE_SRC = join(REPO, "test", "vscode", "suite");

export async function compileSuite() {
  rmSync(SUITE_OUT, { recursive: true, force: true });
  const entries = readdirSync(SUITE_SRC).filter((f) => f.endsWith(".ts"));
  await esbuild.build({
    entryPoints: entries.map((f) => join(SUITE_SRC, f)),
    outdir: SUITE_OUT,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    sourcemap: "inline",
    external: ["vscode", "mocha"],
    logLevel: "warning",
  });
  return SUITE_OUT;
}

/** The compiled fixture module: writeFixture(dir) → the expected index summary. */
export function loadFixture() {
  return createRequire(import.meta.url)(join(SUITE_OUT, "fixture.js"));
}
