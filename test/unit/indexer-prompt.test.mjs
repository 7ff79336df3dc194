// The prompt the indexer produces: stable-first order, the exact DESIGN §6 format, and chained segment hashes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { utimesSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { test } from "node:test";
import { loadIndexer, makeTree, options } from "./support/indexer.mjs";

const { indexer } = await loadIndexer();

const HEAD =
  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
  "You answer questions about the repository below. Cite files as path:line.<|eot_id|>" +
  "<|start_header_id|>user<|end_header_id|>\n\n" +
  '<repository name="fixture">\n';

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

test("the prompt, byte for byte: head, numbered lines in stable-first order, tail", async () => {
  const root = makeTree({
    "b.ts": { content: "b1\nb2\n", mtime: 1000 },
    "a.ts": { content: "a1\r\na2", mtime: 2000 }, // CRLF, no final newline
    "c.ts": { content: "", mtime: 2000 }, // same time as a.ts: path decides
    "d.md": { content: "x\n\ny\n", mtime: 500 },
  });
  const result = await indexer.indexWorkspace(root, options({ name: "fixture" }));
  assert.deepEqual(
    result.segments.map((s) => s.id),
    ["head", "d.md", "b.ts", "a.ts", "c.ts", "tail"],
  );
  assert.equal(
    result.segments.map((s) => s.text).join(""),
    HEAD +
      "### d.md\n1 | x\n2 | \n3 | y\n" +
      "### b.ts\n1 | b1\n2 | b2\n" +
      "### a.ts\n1 | a1\n2 | a2\n" +
      "### c.ts\n" +
      "(4 files)\n</repository><|eot_id|>",
  );
  assert.deepEqual(
    result.files.map((f) => [f.path, f.bytes, f.mtimeMs]),
    [
      ["d.md", 5, 500_000],
      ["b.ts", 6, 1_000_000],
      ["a.ts", 6, 2_000_000],
      ["c.ts", 0, 2_000_000],
    ],
  );
  assert.equal(result.stats.files, 4);
  assert.equal(result.stats.bytes, 17);
  assert.deepEqual(result.stats.skipped, {});
  assert.equal(result.root, root);
  for (const segment of result.segments) {
    assert.equal(segment.estimatedTokens, Math.ceil(Buffer.byteLength(segment.text) / 3.6));
  }
  assert.equal(
    result.stats.estimatedTokens,
    result.segments.reduce((sum, s) => sum + s.estimatedTokens, 0),
  );
});

test("line numbers grow past one digit; the repository name defaults to the folder name and is escaped", async () => {
  const lines = Array.from({ length: 12 }, (_, i) => `line ${i + 1}`).join("\n");
  const root = makeTree({ "src/many.txt": `${lines}\n` });
  const result = await indexer.indexWorkspace(root, options());
  assert.equal(result.segments[0].text, HEAD.replace("fixture", basename(root)));
  assert.equal(
    result.segments[1].text,
    `### src/many.txt\n${Array.from({ length: 12 }, (_, i) => `${i + 1} | line ${i + 1}\n`).join("")}`,
  );
  assert.equal(result.segments[2].text, "(1 file)\n</repository><|eot_id|>");
  assert.equal(indexer.formatHead('a "b" <c> & d').split("\n").at(-2), '<repository name="a &quot;b&quot; &lt;c> &amp; d">');
});

test("formatQuestion is the next user turn plus the assistant header", () => {
  assert.equal(
    indexer.formatQuestion("What does main() do?"),
    "<|start_header_id|>user<|end_header_id|>\n\nWhat does main() do?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
});

test("chained hashes: editing one file changes the chain from that file onward and not before", async () => {
  const names = ["one.ts", "two.ts", "three.ts", "four.ts", "five.ts"];
  const root = makeTree(Object.fromEntries(names.map((n, i) => [n, { content: `// ${n}\n`, mtime: 1000 + i }])));
  const before = await indexer.indexWorkspace(root, options({ name: "fixture" }));
  assert.deepEqual(before.segments.map((s) => s.id), ["head", ...names, "tail"]);

  let chain = "";
  for (const segment of before.segments) {
    assert.equal(segment.hash, sha256(segment.text));
    chain = sha256(chain + segment.hash);
    assert.equal(segment.chainHash, chain);
  }

  // Edit three.ts but keep its modification time, so the order stays the same.
  writeFileSync(join(root, "three.ts"), "// three.ts, edited\n");
  utimesSync(join(root, "three.ts"), 1002, 1002);
  const after = await indexer.indexWorkspace(root, options({ name: "fixture" }));
  assert.deepEqual(after.segments.map((s) => s.id), before.segments.map((s) => s.id));
  const edited = 3; // head, one, two, three
  for (let i = 0; i < before.segments.length; i++) {
    const [old, now] = [before.segments[i], after.segments[i]];
    if (i < edited) {
      assert.equal(now.chainHash, old.chainHash, `segment ${i} (${now.id}) precedes the edit`);
    } else {
      assert.notEqual(now.chainHash, old.chainHash, `segment ${i} (${now.id}) follows the edit`);
      // Only the edited file's own content changed; the chain carries the change to the rest.
      assert.equal(now.hash === old.hash, i !== edited, `content hash of segment ${i} (${now.id})`);
    }
  }
});

test("an edit moves the file to the end; adding a file leaves the head alone", async () => {
  const root = makeTree({
    "a.ts": { content: "a\n", mtime: 1000 },
    "b.ts": { content: "b\n", mtime: 2000 },
    "c.ts": { content: "c\n", mtime: 3000 },
  });
  const before = await indexer.indexWorkspace(root, options());
  writeFileSync(join(root, "a.ts"), "a, edited now\n");
  writeFileSync(join(root, "new.ts"), "new\n");
  utimesSync(join(root, "new.ts"), 500, 500); // older than everything: lands right after the head
  const after = await indexer.indexWorkspace(root, options());
  assert.deepEqual(after.segments.map((s) => s.id), ["head", "new.ts", "b.ts", "c.ts", "a.ts", "tail"]);
  assert.equal(after.segments[0].hash, before.segments[0].hash, "the file count is not in the head");
  assert.equal(after.segments[0].chainHash, before.segments[0].chainHash);
  assert.equal(after.segments.at(-1).text, "(4 files)\n</repository><|eot_id|>");
});
