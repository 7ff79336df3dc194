// What the indexer leaves out by what a file is (binary, too large, lock, minified, secret) and what it
// survives (symlink loops, dangling links, FIFOs, unreadable files and folders, a 2 GB file).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, ftruncateSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { indexedPaths, loadIndexer, makeTree, options, tempDir } from "./support/indexer.mjs";

const { indexer, bundlePath } = await loadIndexer();

test("binary files: NUL bytes, known extensions, invalid UTF-8", async () => {
  const root = makeTree({
    "text.txt": "hello\n",
    "utf8.txt": "caf\u00e9 \u2713 \u{1F600}\n",
    "bom.txt": "\ufeffstarts with a byte-order mark\n",
    "nul.txt": Buffer.from("abc\0def\n"),
    "image.png": "text inside, but a .png is never opened\n",
    "latin1.txt": Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]),
    "utf16.txt": Buffer.from("\ufeffhi\n", "utf16le"),
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), ["bom.txt", "text.txt", "utf8.txt"]);
  assert.deepEqual(result.stats.skipped, { binary: 4 });
  const text = result.segments.map((s) => s.text).join("");
  assert.ok(text.includes("1 | caf\u00e9 \u2713 \u{1F600}\n"));
  assert.ok(text.includes("1 | starts with a byte-order mark\n"), "the byte-order mark is dropped");
});

test("size cap in KiB, and a 2 GB file is skipped without being read", async () => {
  const root = makeTree({
    "small.txt": "x\n",
    "exact.txt": "y".repeat(1023) + "\n",
    "over.txt": "z".repeat(1024) + "\n",
  });
  // A sparse file: 2 GiB long, no disk used. Reading it would take seconds and more memory than a string holds.
  const fd = openSync(join(root, "huge.txt"), "w");
  ftruncateSync(fd, 2 * 1024 ** 3);
  closeSync(fd);
  const started = performance.now();
  const result = await indexer.indexWorkspace(root, options({ maxFileKB: 1 }));
  assert.ok(performance.now() - started < 5000, "the 2 GB file must cost a stat, not a read");
  assert.deepEqual(indexedPaths(result), ["exact.txt", "small.txt"]);
  assert.deepEqual(result.stats.skipped, { tooLarge: 2 });
  assert.equal(result.stats.bytes, 2 + 1024);
});

test("secret-looking files", async () => {
  const root = makeTree({
    ".env": "API_KEY=abc\n",
    ".env.local": "API_KEY=abc\n",
    ".env.example": "API_KEY=\n",
    "config/prod.env": "DB_PASSWORD=x\n",
    "id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    "id_ed25519.pub": "ssh-ed25519 AAAA\n",
    "certs/server.pem": "-----BEGIN CERTIFICATE-----\n",
    "certs/tls.key": "-----BEGIN PRIVATE KEY-----\n",
    "store.p12": "x\n",
    "credentials.json": '{"secret": "x"}\n',
    ".aws/credentials": "[default]\n",
    "src/credentials.ts": "export function readCredentials() {}\n",
    ".npmrc": "//npm.example.test/:_authToken=npm_abc\n",
    "sub/.npmrc": "save-exact=true\n",
    ".netrc": "machine example.com password x\n",
    "deploy/config": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    "notes/gpg.txt": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n",
    "docs/keys.md": "Never commit a file that starts with BEGIN PRIVATE KEY.\n",
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), [".env.example", "docs/keys.md", "src/credentials.ts", "sub/.npmrc"]);
  assert.deepEqual(result.stats.skipped, { secret: 14 });
  assert.ok(!result.segments.some((s) => s.text.includes("npm_abc")));
});

test("lock files and minified bundles", async () => {
  const longLine = `var a=${"[1,2,3],".repeat(800)}0;`;
  const root = makeTree({
    "package.json": '{"name": "x"}\n',
    "package-lock.json": "{}\n",
    "yarn.lock": "x\n",
    "pnpm-lock.yaml": "x\n",
    "Cargo.lock": "x\n",
    "poetry.lock": "x\n",
    "Gemfile.lock": "x\n",
    "composer.lock": "{}\n",
    "go.sum": "x\n",
    "app.min.js": "var a=1;\n",
    "style.min.css": "a{}\n",
    "app.js.map": "{}\n",
    "dist/bundle.js": `${longLine}\n${longLine}\n`,
    "data.json": '{"a":1,"b":[1,2,3]}',
    "src/app.js": "function add(a, b) {\n  return a + b;\n}\n".repeat(200),
  });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), ["data.json", "package.json", "src/app.js"]);
  assert.deepEqual(result.stats.skipped, { lockFile: 8, minified: 4 });
});

test("symlinks: loops, a link to itself, dangling links, links to files and folders, a FIFO", async () => {
  const outside = makeTree({ "o.ts": "outside\n" });
  const root = makeTree({
    "real/file.ts": "x\n",
    "real/loop": { symlink: ".." },
    "self": { symlink: "self" },
    "dangling": { symlink: "missing.txt" },
    "alias.ts": { symlink: "real/file.ts" },
    "outside": { symlink: outside },
    "twin": { symlink: "real" },
  });
  const mkfifo = spawnSync("mkfifo", [join(root, "fifo")]);
  assert.equal(mkfifo.status, 0, `mkfifo failed: ${mkfifo.stderr}`);
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), ["alias.ts", "outside/o.ts", "real/file.ts"]);
  // real/loop leads back to the root, self points at itself, twin reaches real/ again by another path;
  // the dangling link and the FIFO cannot be read as files.
  assert.deepEqual(result.stats.skipped, { symlinkLoop: 3, unreadable: 2 });
});

test("unreadable files and folders are counted, not fatal", async () => {
  const root = makeTree({ "open.txt": "x\n", "locked.txt": "x\n", "lockeddir/x.ts": "x\n" });
  chmodSync(join(root, "locked.txt"), 0o000);
  chmodSync(join(root, "lockeddir"), 0o000);
  let stats;
  let paths;
  try {
    if (process.getuid?.() === 0) {
      // Root reads everything whatever the mode, so the indexer runs as the unprivileged user "nobody".
      const script = `require(${JSON.stringify(bundlePath)}).indexWorkspace(${JSON.stringify(root)},
        { maxFileKB: 512, include: [], exclude: [] })
        .then((r) => process.stdout.write(JSON.stringify({ stats: r.stats, paths: r.files.map((f) => f.path) })));`;
      const child = spawnSync(process.execPath, ["-e", script], { uid: 65534, gid: 65534, encoding: "utf8" });
      assert.equal(child.status, 0, `indexer as nobody failed: ${child.stderr}`);
      ({ stats, paths } = JSON.parse(child.stdout));
    } else {
      const result = await indexer.indexWorkspace(root, options());
      stats = result.stats;
      paths = indexedPaths(result);
    }
  } finally {
    chmodSync(join(root, "lockeddir"), 0o755);
  }
  assert.deepEqual(paths, ["open.txt"]);
  assert.deepEqual(stats.skipped, { unreadable: 2 });
});

test("a folder that is missing, or a file, is a clear error", async () => {
  const root = makeTree({ "f.txt": "x\n" });
  await assert.rejects(indexer.indexWorkspace(join(root, "nope"), options()), /no such folder/);
  await assert.rejects(indexer.indexWorkspace(join(root, "f.txt"), options()), /it is a file, not a folder/);
});

test("cancellation stops the walk with IndexCancelled", async () => {
  const root = makeTree({ "a.txt": "x\n", "b.txt": "y\n" });
  await assert.rejects(indexer.indexWorkspace(root, options({ isCancelled: () => true })), {
    name: "IndexCancelled",
  });
});

test("a tree 1000 folders deep", async () => {
  const deep = Array.from({ length: 1000 }, () => "d").join("/");
  const root = makeTree({ [`${deep}/bottom.txt`]: "x\n", "top.txt": "y\n" });
  const result = await indexer.indexWorkspace(root, options());
  assert.deepEqual(indexedPaths(result), [`${deep}/bottom.txt`, "top.txt"]);
});

test("a folder of 100,000 files", { timeout: 240_000 }, async () => {
  const root = tempDir();
  const many = join(root, "many");
  mkdirSync(many);
  // Written directly rather than through makeTree: 100,000 files take seconds on a busy disk already.
  for (let i = 0; i < 100_000; i++) writeFileSync(join(many, `f${i}.txt`), i % 1000 === 0 ? "\0" : `${i}\n`);
  const started = performance.now();
  const result = await indexer.indexWorkspace(root, options());
  // About 5 s on a busy 2-core machine; anything quadratic in the folder size would take many minutes.
  assert.ok(performance.now() - started < 60_000, `indexing took ${Math.round(performance.now() - started)} ms`);
  assert.equal(result.stats.files, 99_900);
  assert.deepEqual(result.stats.skipped, { binary: 100 });
  assert.equal(result.segments.length, 99_902);
  assert.equal(result.segments.at(-1).text, "(99900 files)\n</repository><|eot_id|>");
});
