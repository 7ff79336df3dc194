// Contexts kept on disk across sidecar sessions: the real sidecar (dist/sidecar.js) over raw JSON-RPC with
// the tiny-f32 fixture and an HCAttention budget of 25%. Save, restart, load from disk, reuse only the
// prefix that still matches, and survive a damaged snapshot file.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { test } from "node:test";
import rpc from "vscode-jsonrpc/node.js";
import { buildDist, defaultKv, sidecarPath, tinyModel } from "./support/engine-client.mjs";
import { loadIndexer, makeTree, options, tempDir } from "./support/indexer.mjs";

buildDist();
const modelPath = tinyModel();
const { indexer } = await loadIndexer();
const loadParams = { modelPath, device: "cpu", threads: 2, kv: { ...defaultKv, budget: "25%" }, contextTokens: 2048 };

/** A sidecar with the model loaded; its stderr lines are collected. */
async function startSidecar() {
  const child = spawn(process.execPath, [sidecarPath], { stdio: ["pipe", "pipe", "pipe"] });
  const lines = [];
  child.stderr.setEncoding("utf8").on("data", (chunk) => lines.push(...chunk.split("\n").filter(Boolean)));
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  connection.listen();
  const exited = new Promise((resolve) => child.on("exit", resolve));
  await connection.sendRequest("engine/load", loadParams);
  const stop = async () => {
    // The sidecar may exit before its answer is read: its exit is the answer that counts.
    await Promise.race([connection.sendRequest("engine/shutdown").catch(() => undefined), exited]);
    await exited;
    connection.dispose();
  };
  return { connection, lines, stop };
}

const files = {
  "src/a.ts": "export function add(a: number, b: number) {\n  return a + b;\n}\n".repeat(20),
  "src/b.ts": "import { add } from './a';\nconsole.log(add(1, 2));\n".repeat(20),
  "README.md": "# demo\nA small repository for the snapshot tests.\n",
};

async function segmentsOf(root) {
  const result = await indexer.indexWorkspace(root, options({ name: "demo" }));
  return result.segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash }));
}

function ask(connection, contextId) {
  const question = { contextId, requestId: "q", messages: [{ role: "user", content: "What does add do?" }], maxTokens: 12 };
  return connection.sendRequest("chat/ask", question);
}

function snapshotFiles(dir) {
  return readdirSync(dir).filter((name) => name.endsWith(".hckv"));
}

test("a saved context is loaded from disk after a restart, reused up to the first changed segment, and a damaged file is prefilled again", async () => {
  const repository = makeTree(files);
  const snapshotDir = tempDir();
  const segments = await segmentsOf(repository);
  const open = (connection, segs) => connection.sendRequest("context/open", { segments: segs, snapshotDir, workspaceFolder: repository });

  const first = await startSidecar();
  const prefilled = await open(first.connection, segments);
  assert.equal(prefilled.source, "prefill");
  const before = await ask(first.connection, prefilled.contextId);
  const saved = await first.connection.sendRequest("context/save", { contextId: prefilled.contextId, snapshotDir });
  assert.equal(saved.path, join(snapshotDir, snapshotFiles(snapshotDir)[0]));
  assert.ok(saved.bytes > 0);
  const stats = await first.connection.sendRequest("engine/stats");
  assert.ok(stats.memory.diskBytes >= saved.bytes, `diskBytes ${stats.memory.diskBytes}`);
  assert.ok(stats.memory.fastBytes > 0 && stats.kvBytesInUse === stats.memory.fastBytes + stats.memory.hostBytes);
  await first.stop();

  const second = await startSidecar();
  const loadStarted = performance.now();
  const fromDisk = await open(second.connection, segments);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  assert.deepEqual(
    { source: fromDisk.source, reusedTokens: fromDisk.reusedTokens, reusedSegments: fromDisk.reusedSegments, contextId: fromDisk.contextId },
    { source: "disk", reusedTokens: prefilled.tokens, reusedSegments: segments.length, contextId: prefilled.contextId },
  );
  const after = await ask(second.connection, fromDisk.contextId);
  assert.equal(after.text, before.text, "greedy answers over the loaded context equal those over the prefilled one");
  assert.equal(after.stats.reusedTokens, prefilled.tokens);
  await second.stop();

  // Files are ordered stable-first: the last file comes right before the tail.
  const lastFile = segments.at(-2).id;
  const changed = await segmentsOf(makeTree({ [lastFile]: "changed\n" }, repository));
  const firstChanged = changed.findIndex((s, i) => s.chainHash !== segments[i].chainHash);
  const third = await startSidecar();
  const partial = await open(third.connection, changed);
  assert.equal(partial.source, "disk");
  assert.equal(partial.reusedSegments, firstChanged);
  assert.ok(partial.reusedTokens > 0 && partial.reusedTokens < partial.tokens, `reused ${partial.reusedTokens} of ${partial.tokens}`);
  assert.ok(partial.tokensPerSecond > 0, "the changed tail is prefilled");
  await third.stop();

  // The auto-save after that prefill replaced the snapshot: flip one byte in its middle.
  const [name] = snapshotFiles(snapshotDir);
  const file = join(snapshotDir, name);
  const bytes = readFileSync(file);
  bytes[bytes.length >> 1] ^= 0x5a;
  writeFileSync(file, bytes);
  const fourth = await startSidecar();
  const reprefilled = await open(fourth.connection, changed);
  assert.equal(reprefilled.source, "prefill");
  assert.equal(reprefilled.reusedTokens, 0);
  assert.ok(fourth.lines.some((l) => l.includes(name) && /cannot be used/.test(l)), fourth.lines.join("\n"));
  await fourth.stop();
  console.error(
    `snapshot of ${prefilled.tokens} tokens: save ${saved.seconds.toFixed(3)} s (${saved.bytes} bytes), ` +
      `open from disk ${loadSeconds.toFixed(3)} s, prefill ${prefilled.prefillSeconds.toFixed(3)} s`,
  );
});

test("saved contexts stay under repoLlama.cache.maxDiskGB: the least recently used .hckv goes, never the one in use; 0 saves nothing", async () => {
  const snapshotDir = tempDir();
  const workspaceA = makeTree(files);
  const workspaceB = makeTree({ ...files, "src/c.ts": "export const c = 3;\n".repeat(10) });
  const sidecar = await startSidecar();
  const open = async (workspace, maxDiskBytes) => {
    const opened = await sidecar.connection.sendRequest("context/open", { segments: await segmentsOf(workspace), snapshotDir, workspaceFolder: workspace, maxDiskBytes });
    // Queued behind the save that follows a prefill, so both have run when it answers.
    const saved = await sidecar.connection.sendRequest("context/save", { contextId: opened.contextId, snapshotDir });
    return { opened, saved };
  };

  const a = await open(workspaceA, undefined);
  const b = await open(workspaceB, undefined);
  assert.deepEqual(snapshotFiles(snapshotDir).sort(), [basename(a.saved.path), basename(b.saved.path)].sort());
  // Room for the larger of the two, not for both.
  const cap = Math.floor(1.5 * Math.max(a.saved.bytes, b.saved.bytes));

  const again = await open(workspaceA, cap);
  assert.equal(again.opened.source, "prefill", "workspace B's context was in memory");
  assert.deepEqual(snapshotFiles(snapshotDir), [basename(a.saved.path)], "B's snapshot, the least recently used, was deleted");
  assert.ok(sidecar.lines.some((l) => l.includes(`deleted the saved context ${b.saved.path}`)), sidecar.lines.join("\n"));
  const stats = await sidecar.connection.sendRequest("engine/stats");
  assert.equal(stats.memory.diskBytes, again.saved.bytes);

  // A cap below the context's own snapshot: it is not kept, and the reason says what to change.
  const tooSmall = await open(workspaceB, 1000).then(
    () => undefined,
    (error) => error,
  );
  assert.match(tooSmall?.message ?? "", /^The context's snapshot is [\d.]+ GiB but repoLlama\.cache\.maxDiskGB allows 0\.00 GiB; raise it to keep this context across sessions\.$/i);
  assert.deepEqual(snapshotFiles(snapshotDir), [], "A went to make room, and B's own file was over the cap");

  // 0: saving is off; nothing is written after a prefill and context/save says so.
  const opened = await sidecar.connection.sendRequest("context/open", { segments: await segmentsOf(workspaceA), snapshotDir, workspaceFolder: workspaceA, maxDiskBytes: 0 });
  assert.equal(opened.source, "prefill");
  await assert.rejects(
    sidecar.connection.sendRequest("context/save", { contextId: opened.contextId, snapshotDir }),
    /Saving contexts is off \(repoLlama\.cache\.maxDiskGB is 0\)/,
  );
  assert.deepEqual(snapshotFiles(snapshotDir), []);
  await sidecar.stop();
});
