// The snapshot store (src/sidecar/snapshots.ts): keys, LRU eviction under the byte cap, corrupt and
// truncated files, and temp files left by a crashed write.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";
import { repoRoot, tempDir } from "./support/indexer.mjs";

const outfile = join(tempDir("repo-llama-snapshots-"), "snapshots.cjs");
await build({ entryPoints: [join(repoRoot, "src/sidecar/snapshots.ts")], bundle: true, platform: "node", format: "cjs", outfile, logLevel: "silent" });
const { SnapshotStore } = createRequire(import.meta.url)(outfile);

const kv = { budget: "25%", topP: 0.9, sinkTokens: 4, recentTokens: 256 };
const key = (workspaceFolder, overrides = {}) => ({ workspaceFolder, modelDigest: "ab".repeat(32), kvConfig: kv, ...overrides });
/** Payloads of a known size: the envelope adds 56 bytes of header plus the metadata JSON. */
const payload = (n, seed = 1) => Buffer.alloc(n, seed);

test("put then get returns the payload; the key covers folder, model digest and KV config", async () => {
  const store = new SnapshotStore(tempDir(), 10 * 2 ** 20);
  const data = randomBytes(100_000);
  const { file, bytes } = await store.put(key("/w/a"), data);
  assert.equal(statSync(file).size, bytes);
  assert.ok(bytes > data.length + 56);
  const read = await store.get(key("/w/a"));
  assert.equal(read.kind, "hit");
  assert.ok(read.payload.equals(data));
  assert.equal((await store.get(key("/w/b"))).kind, "miss");
  assert.equal((await store.get(key("/w/a", { modelDigest: "cd".repeat(32) }))).kind, "miss");
  assert.equal((await store.get(key("/w/a", { kvConfig: { ...kv, budget: "50%" } }))).kind, "miss");
  // The KV config is compared by content, not by key order.
  const reordered = { recentTokens: 256, sinkTokens: 4, topP: 0.9, budget: "25%" };
  assert.equal((await store.get(key("/w/a", { kvConfig: reordered }))).kind, "hit");
});

test("a put over the cap evicts least recently used snapshots first, and a get counts as a use", async () => {
  const folder = tempDir();
  const size = 1000;
  const probe = new SnapshotStore(folder, 10 * 2 ** 20);
  const one = (await probe.put(key("/probe"), payload(size))).bytes;
  await probe.clear();
  // Room for exactly three snapshots.
  const store = new SnapshotStore(folder, 3 * one + 10);
  await store.put(key("/w/1"), payload(size, 1));
  await store.put(key("/w/2"), payload(size, 2));
  await store.put(key("/w/3"), payload(size, 3));
  assert.equal((await store.get(key("/w/1"))).kind, "hit"); // 1 is now the most recently used
  const fourth = await store.put(key("/w/4"), payload(size, 4));
  assert.deepEqual(fourth.evicted, [join(folder, SnapshotStore.fileNameOf(key("/w/2")))]);
  const fifth = await store.put(key("/w/5"), payload(size, 5));
  assert.deepEqual(fifth.evicted, [join(folder, SnapshotStore.fileNameOf(key("/w/3")))]);
  const left = (await store.list()).map((e) => e.file);
  assert.deepEqual(left, ["/w/1", "/w/4", "/w/5"].map((w) => join(folder, SnapshotStore.fileNameOf(key(w)))));
  assert.ok((await store.list()).reduce((s, e) => s + e.bytes, 0) <= store.maxBytes);
  // The order survives a new store on the same folder (a VS Code restart): it lives in the files' mtimes.
  const restarted = new SnapshotStore(folder, 3 * one + 10);
  const sixth = await restarted.put(key("/w/6"), payload(size, 6));
  assert.deepEqual(sixth.evicted, [join(folder, SnapshotStore.fileNameOf(key("/w/1")))]);
});

test("a snapshot larger than the cap is refused with the setting to change; a cap of 0 disables saving", async () => {
  const store = new SnapshotStore(tempDir(), 5000);
  await assert.rejects(store.put(key("/w"), payload(10_000)), /allows 0\.00 GB; raise it to keep this context across sessions/);
  assert.deepEqual(await store.list(), []);
  await assert.rejects(new SnapshotStore(tempDir(), 0).put(key("/w"), payload(10)), /Saving contexts is off \(repoLlama\.cache\.maxDiskGB is 0\)/);
});

test("a truncated file is detected, deleted and reported with a clear message", async () => {
  const store = new SnapshotStore(tempDir(), 10 * 2 ** 20);
  const { file, bytes } = await store.put(key("/w"), randomBytes(50_000));
  truncateSync(file, bytes - 1000);
  const read = await store.get(key("/w"));
  assert.equal(read.kind, "corrupt");
  assert.match(read.message, /^The saved context [0-9a-f]{40}\.snap was damaged \(\d+ bytes where the header says \d+: truncated\) and has been deleted; the context will be prefilled again\.$/);
  assert.equal(existsSync(file), false);
  assert.equal((await store.get(key("/w"))).kind, "miss");
});

test("a flipped payload byte fails the checksum; a foreign file fails the magic", async () => {
  const store = new SnapshotStore(tempDir(), 10 * 2 ** 20);
  const { file } = await store.put(key("/w"), randomBytes(50_000));
  const data = readFileSync(file);
  data[data.length - 10] ^= 0xff;
  writeFileSync(file, data);
  const flipped = await store.get(key("/w"));
  assert.equal(flipped.kind, "corrupt");
  assert.match(flipped.message, /\(checksum mismatch\)/);
  writeFileSync(file, Buffer.alloc(4096, 7));
  assert.match((await store.get(key("/w"))).message, /\(not a snapshot file\)/);
});

test("temp files of crashed writes are ignored by readers and cleaned; a live writer's temp file is left alone", async () => {
  const folder = tempDir();
  const name = SnapshotStore.fileNameOf(key("/w"));
  const dead = spawnSync(process.execPath, ["-e", "0"]).pid; // exited: no process has this id now
  writeFileSync(join(folder, `${name}.tmp-${dead}-aaaa`), "half a snapshot");
  const old = join(folder, `${name}.tmp-${process.pid}-bbbb`);
  writeFileSync(old, "an old write");
  utimesSync(old, new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
  const live = `${name}.tmp-${process.pid}-cccc`;
  writeFileSync(join(folder, live), "being written right now");

  const store = new SnapshotStore(folder, 10 * 2 ** 20);
  assert.equal((await store.get(key("/w"))).kind, "miss", "a temp file is never read as the snapshot");
  assert.deepEqual(readdirSync(folder), [live]);
  assert.deepEqual(await store.list(), []);
  const written = await store.put(key("/w"), payload(100));
  assert.deepEqual(readdirSync(folder).sort(), [name, live].sort(), "no temp file of the write itself remains");
  assert.equal((await store.get(key("/w"))).payload.length, 100);
  assert.equal(written.file, join(folder, name));
});

test("clear removes snapshots and temp files and reports their count and size", async () => {
  const folder = tempDir();
  const store = new SnapshotStore(folder, 10 * 2 ** 20);
  const a = await store.put(key("/a"), payload(1000));
  const b = await store.put(key("/b"), payload(2000));
  writeFileSync(join(folder, `x.snap.tmp-1-zzzz`), "12345");
  writeFileSync(join(folder, "unrelated.txt"), "not ours");
  assert.deepEqual(await store.clear(), { files: 3, bytes: a.bytes + b.bytes + 5 });
  assert.deepEqual(readdirSync(folder), ["unrelated.txt"]);
  assert.deepEqual(await new SnapshotStore(join(folder, "missing"), 1).clear(), { files: 0, bytes: 0 });
});

test("the engine's .hckv files count under the same cap: least recently used go first, never the one in use", async () => {
  const folder = tempDir();
  const store = new SnapshotStore(folder, 10_000);
  const hckv = (name, bytes) => {
    const file = join(folder, `${name}.hckv`);
    writeFileSync(file, Buffer.alloc(bytes, 1));
    return file;
  };
  // Used in this order: a (oldest), b, c, then the store's own snapshot d.
  const a = hckv("a", 3000);
  const b = hckv("b", 3000);
  const c = hckv("c", 3000);
  for (const file of [a, b, c]) await store.markUsed(file);
  writeFileSync(join(folder, "c.hckv.tmp-1-x"), Buffer.alloc(50_000)); // a write in progress is no saved context
  const listed = await store.list();
  assert.deepEqual(listed.map((e) => e.file), [a, b, c]);
  assert.deepEqual(listed.map((e) => e.bytes), [3000, 3000, 3000]);
  assert.deepEqual(await store.evictBeyondCap(c), [], "9,000 bytes are under the cap");

  // The store's own put counts the .hckv files: the least recently used one goes.
  const d = await store.put(key("/w/d"), payload(1000));
  assert.deepEqual(d.evicted, [a]);
  assert.deepEqual((await store.list()).map((e) => e.file), [b, c, d.file]);

  // b is the context in use (just loaded): it becomes the most recent, and even when the cap shrinks below
  // everything else it stays while the others go, oldest first.
  await store.markUsed(b);
  const small = new SnapshotStore(folder, 3500);
  assert.deepEqual(await small.evictBeyondCap(b), [c, d.file]);
  assert.deepEqual((await small.list()).map((e) => e.file), [b]);
  // Alone above the cap, the one in use still stays: the caller decides.
  assert.deepEqual(await new SnapshotStore(folder, 100).evictBeyondCap(b), []);
  assert.ok(existsSync(b));
  // clear removes the engine's files too.
  assert.deepEqual(await store.clear(), { files: 2, bytes: 3000 + 50_000 });
});
