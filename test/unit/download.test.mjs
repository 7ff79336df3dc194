// The model download (src/model/download.ts) against a local HTTP server on 127.0.0.1: full download,
// resume after the server cuts the connection, a .part file from an earlier run, checksum mismatch,
// disk full, 404, redirects.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { build } from "esbuild";
import { createRequire } from "node:module";
import { repoRoot, tempDir } from "./support/indexer.mjs";

const outfile = join(tempDir("repo-llama-download-"), "download.cjs");
await build({ entryPoints: [join(repoRoot, "src/model/download.ts")], bundle: true, platform: "node", format: "cjs", outfile, logLevel: "silent" });
const { downloadFile, DownloadError } = createRequire(import.meta.url)(outfile);

const body = randomBytes(3 * 1024 * 1024 + 123);
const digest = createHash("sha256").update(body).digest("hex");
/** Every request, with its Range header. */
const requests = [];
let cutNextAt = 0;

const server = createServer((req, res) => {
  requests.push({ url: req.url, range: req.headers.range });
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/model.gguf.sha256" || url.pathname === "/cut.gguf.sha256") {
    res.end(`${digest}  model.gguf\n`);
    return;
  }
  if (url.pathname === "/wrong.gguf.sha256") {
    res.end(`${"0".repeat(64)}\n`);
    return;
  }
  if (url.pathname === "/redirect.gguf") {
    res.writeHead(302, { Location: "/model.gguf", "X-Linked-Etag": `"${digest}"` });
    res.end();
    return;
  }
  if (!["/model.gguf", "/cut.gguf", "/wrong.gguf", "/nosum.gguf"].includes(url.pathname)) {
    res.writeHead(404, "Not Found");
    res.end("no such file");
    return;
  }
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = match ? Number(match[1]) : 0;
  const headers = { "Content-Length": body.length - start, "Accept-Ranges": "bytes" };
  if (match) res.writeHead(206, { ...headers, "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}` });
  else res.writeHead(200, headers);
  if (url.pathname === "/cut.gguf" && cutNextAt > 0) {
    // Send part of the body, then drop the connection as a failing network would.
    const until = cutNextAt;
    cutNextAt = 0;
    res.write(body.subarray(start, until), () => setTimeout(() => res.socket.destroy(), 20));
    return;
  }
  res.end(body.subarray(start));
});

let base;
before(async () => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

const plentyOfSpace = async () => 100 * 2 ** 30;

test("downloads the whole file, verifies the published <url>.sha256 and reports progress", async () => {
  const folder = tempDir();
  const progress = [];
  const result = await downloadFile({ url: `${base}/model.gguf`, folder, freeSpace: plentyOfSpace, onProgress: (p) => progress.push(p) });
  assert.equal(result.path, join(folder, "model.gguf"));
  assert.equal(result.bytes, body.length);
  assert.equal(result.sha256, digest);
  assert.equal(result.resumedFrom, 0);
  assert.ok(readFileSync(result.path).equals(body));
  assert.equal(existsSync(`${result.path}.part`), false);
  const last = progress.at(-1);
  assert.equal(last.receivedBytes, body.length);
  assert.equal(last.totalBytes, body.length);
  assert.ok(last.bytesPerSecond > 0);
});

test("a connection cut mid-way is resumed with a Range request from the bytes already on disk", async () => {
  const folder = tempDir();
  cutNextAt = 1024 * 1024;
  requests.length = 0;
  const result = await downloadFile({ url: `${base}/cut.gguf`, folder, freeSpace: plentyOfSpace });
  assert.equal(result.resumes, 1);
  assert.ok(readFileSync(result.path).equals(body));
  assert.equal(result.sha256, digest);
  const fileRequests = requests.filter((r) => r.url === "/cut.gguf");
  assert.equal(fileRequests.length, 2);
  assert.equal(fileRequests[0].range, undefined);
  // The resume starts where the bytes on disk end: at most the cut point (a reset connection can lose
  // the last bytes in flight), and never from zero.
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(fileRequests[1].range ?? "")?.[1]);
  assert.ok(resumedAt > 0 && resumedAt <= 1024 * 1024, `resume range ${fileRequests[1].range}`);
});

test("a .part file left by an earlier run is resumed, not downloaded again", async () => {
  const folder = tempDir();
  writeFileSync(join(folder, "model.gguf.part"), body.subarray(0, 777_777));
  requests.length = 0;
  const result = await downloadFile({ url: `${base}/model.gguf`, folder, freeSpace: plentyOfSpace });
  assert.equal(result.resumedFrom, 777_777);
  assert.ok(readFileSync(result.path).equals(body));
  assert.equal(requests.find((r) => r.url === "/model.gguf").range, "bytes=777777-");
});

test("a checksum mismatch is refused: nothing is installed and the partial file is removed", async () => {
  const folder = tempDir();
  await assert.rejects(
    downloadFile({ url: `${base}/wrong.gguf`, folder, freeSpace: plentyOfSpace }),
    (error) =>
      error instanceof DownloadError &&
      error.problem === "checksum" &&
      error.message.includes(`its sha256 is ${digest}, but ${"0".repeat(64)} was expected`) &&
      /It was deleted; run Download Model again/.test(error.message),
  );
  assert.equal(existsSync(join(folder, "wrong.gguf")), false);
  assert.equal(existsSync(join(folder, "wrong.gguf.part")), false);
});

test("a checksum given by the caller wins over the published one", async () => {
  const folder = tempDir();
  await assert.rejects(
    downloadFile({ url: `${base}/model.gguf`, folder, sha256: "f".repeat(64), freeSpace: plentyOfSpace }),
    (error) => error.problem === "checksum",
  );
  const ok = await downloadFile({ url: `${base}/nosum.gguf`, folder, sha256: digest.toUpperCase(), freeSpace: plentyOfSpace });
  assert.equal(ok.sha256, digest);
});

test("without any checksum the file is installed unverified", async () => {
  const folder = tempDir();
  const result = await downloadFile({ url: `${base}/nosum.gguf`, folder, freeSpace: plentyOfSpace });
  assert.equal(result.sha256, undefined);
  assert.equal(statSync(result.path).size, body.length);
});

test("a redirect is followed and the X-Linked-Etag sha256 of the first hop is checked", async () => {
  const folder = tempDir();
  const result = await downloadFile({ url: `${base}/redirect.gguf`, folder, freeSpace: plentyOfSpace });
  assert.equal(result.path, join(folder, "redirect.gguf"));
  assert.equal(result.sha256, digest);
});

test("a disk without room is refused before a byte is written, with the sizes", async () => {
  const folder = tempDir();
  const probed = [];
  const freeSpace = async (dir) => {
    probed.push(dir);
    return 2 * 1024 * 1024;
  };
  await assert.rejects(
    downloadFile({ url: `${base}/model.gguf`, folder, freeSpace }),
    (error) =>
      error.problem === "diskFull" &&
      /model\.gguf needs 3\.0 MB more on disk \(plus 256\.0 MB to spare\), but .* has only 2\.0 MB free\. Free some space/.test(error.message),
  );
  assert.deepEqual(probed, [folder]);
  assert.equal(existsSync(join(folder, "model.gguf.part")), false);
  assert.equal(existsSync(join(folder, "model.gguf")), false);
});

test("a 404 says what the server answered and which setting to check", async () => {
  const folder = tempDir();
  await assert.rejects(
    downloadFile({ url: `${base}/missing.gguf`, folder, freeSpace: plentyOfSpace }),
    (error) =>
      error.problem === "http" &&
      error.message === `The server answered 404 Not Found for ${base}/missing.gguf. Check repoLlama.model.downloadUrl.`,
  );
});

test("cancelling keeps the .part file so that the next run resumes", async () => {
  const folder = tempDir();
  const controller = new AbortController();
  await assert.rejects(
    downloadFile({
      url: `${base}/model.gguf`,
      folder,
      freeSpace: plentyOfSpace,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    }),
    (error) => error.problem === "cancelled" && /resumes from there/.test(error.message),
  );
  assert.equal(existsSync(join(folder, "model.gguf")), false);
  assert.ok(statSync(join(folder, "model.gguf.part")).size > 0);
});
