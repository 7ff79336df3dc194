// Shared by the indexer's tests and its benchmark: builds the real indexer (and CLI) from src/ with esbuild,
// so they run from a clean clone without a prior build, and makes fixture trees in the system temp folder.
import { build } from "esbuild";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

const createdDirs = [];
process.on("exit", () => {
  for (const dir of createdDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system temp folder, removed when the process exits; world-readable (see below). */
export function tempDir(prefix = "repo-llama-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // mkdtemp makes 0700 folders; tests that run the indexer as another user need to reach inside.
  chmodSync(dir, 0o755);
  createdDirs.push(dir);
  return dir;
}

async function bundle(entry, name) {
  const outdir = tempDir("repo-llama-build-");
  const outfile = join(outdir, `${name}.cjs`);
  await build({
    entryPoints: [join(repoRoot, entry)],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    external: ["vscode", "*.node"],
    outfile,
    logLevel: "silent",
  });
  return outfile;
}

let indexerPromise;
/** The indexer's module (src/workspace/index.ts) and the path of its bundle, for child processes. */
export function loadIndexer() {
  indexerPromise ??= bundle("src/workspace/index.ts", "indexer").then((bundlePath) => ({
    indexer: createRequire(import.meta.url)(bundlePath),
    bundlePath,
  }));
  return indexerPromise;
}

/** Bundles the repo-llama CLI (src/cli.ts) and returns the path to run with node. */
export function buildCli() {
  return bundle("src/cli.ts", "cli");
}

/**
 * Writes a tree: keys are relative paths, values are file contents (string or Buffer), or
 * { symlink: target } for a link, or { content, mtime } with mtime in seconds since the epoch.
 */
export function makeTree(files, root = tempDir()) {
  for (const [relative, spec] of Object.entries(files)) {
    const path = join(root, relative);
    mkdirSync(dirname(path), { recursive: true });
    if (spec && typeof spec === "object" && "symlink" in spec) symlinkSync(spec.symlink, path);
    else if (spec && typeof spec === "object" && !Buffer.isBuffer(spec)) {
      writeFileSync(path, spec.content);
      utimesSync(path, spec.mtime, spec.mtime);
    } else writeFileSync(path, spec);
  }
  return root;
}

/** Options with nothing excluded by default, so a test sees exactly the rules it writes. */
export function options(overrides = {}) {
  return { maxFileKB: 512, include: [], exclude: [], ...overrides };
}

export function indexedPaths(result) {
  return result.files.map((file) => file.path).sort();
}
