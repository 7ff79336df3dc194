// Bundles the extension, the sidecar, the CLI, the fixture writer and the chat webview script into dist/,
// and copies the native addon next to them (the bundles load it from their own folder).
import * as esbuild from "esbuild";
import { copyFileSync, existsSync, mkdirSync, renameSync } from "node:fs";

const watch = process.argv.includes("--watch");
const production = process.argv.includes("--production");

const node = {
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  sourcemap: !production,
  minify: production,
  external: ["vscode", "*.node"],
  logLevel: "info",
};

const builds = [
  { ...node, entryPoints: { extension: "src/extension.ts", sidecar: "src/sidecar/main.ts", cli: "src/cli.ts" }, outdir: "dist" },
  { ...node, entryPoints: { fixtures: "test/fixtures/cli.ts" }, outdir: "dist" },
  {
    bundle: true,
    platform: "browser",
    format: "iife",
    target: "es2022",
    sourcemap: !production,
    minify: production,
    entryPoints: { chat: "media/chat.ts" },
    outdir: "dist/media",
    logLevel: "info",
  },
];

mkdirSync("dist", { recursive: true });
const addon = "build/native/Release/hcattn.node";
// Copy then rename: a process that has the old addon mapped keeps its file intact (overwriting a mapped
// shared library in place crashes that process with SIGBUS).
if (existsSync(addon)) {
  copyFileSync(addon, "dist/hcattn.node.tmp");
  renameSync("dist/hcattn.node.tmp", "dist/hcattn.node");
}
else console.warn(`esbuild: ${addon} not built yet (run npm run build:native); dist/ has no engine`);

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
