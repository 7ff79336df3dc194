// Shared by the sidecar tests: builds dist/ (the real sidecar bundle), writes the fixture model, and
// bundles the engine client (src/engine/client.ts) so that the tests drive it without VS Code.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { build } from "esbuild";
import { ensureFixtures } from "../../engine/oracle-fixtures.mjs";
import { repoRoot, tempDir } from "./indexer.mjs";

export const sidecarPath = join(repoRoot, "dist", "sidecar.js");

/** Runs esbuild.mjs once, so that dist/sidecar.js and dist/fixtures.js match the sources. */
export function buildDist() {
  const r = spawnSync(process.execPath, ["esbuild.mjs"], { cwd: repoRoot, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`node esbuild.mjs failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
}

export function tinyModel() {
  return ensureFixtures(["tiny-f32"])["tiny-f32"];
}

/** The bigram model whose greedy answer is the fixture writer's DEFAULT_SCRIPT. */
export function scriptedModel() {
  return ensureFixtures(["scripted"]).scripted;
}

/** src/engine/client.ts as a CommonJS module. */
export async function loadClientModule() {
  const outfile = join(tempDir("repo-llama-client-"), "client.cjs");
  await build({
    entryPoints: [join(repoRoot, "src", "engine", "client.ts")],
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    external: ["vscode", "*.node"],
    outfile,
    logLevel: "silent",
  });
  return createRequire(import.meta.url)(outfile);
}

export const defaultKv = { budget: "25%", topP: 0.9, sinkTokens: 4, recentTokens: 256 };


/**
 * The real sidecar over raw JSON-RPC with a model loaded (engine/load's answer in `loaded`); its stderr
 * lines are collected. env: extra environment for the sidecar process.
 */
export async function startSidecar(loadParams, env = {}) {
  const { spawn } = await import("node:child_process");
  const rpc = (await import("vscode-jsonrpc/node.js")).default;
  const child = spawn(process.execPath, [sidecarPath], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
  const lines = [];
  child.stderr.setEncoding("utf8").on("data", (chunk) => lines.push(...chunk.split("\n").filter(Boolean)));
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  connection.listen();
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let loaded;
  try {
    loaded = await connection.sendRequest("engine/load", loadParams);
  } catch (error) {
    // A refused load leaves no sidecar behind.
    child.kill();
    await exited;
    connection.dispose();
    throw error;
  }
  const stop = async () => {
    // The sidecar may exit before its answer is read: its exit is the answer that counts.
    await Promise.race([connection.sendRequest("engine/shutdown").catch(() => undefined), exited]);
    await exited;
    connection.dispose();
  };
  return { connection, lines, loaded, stop };
}
