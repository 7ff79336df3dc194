// The real sidecar (dist/sidecar.js) driven through the real client (src/engine/client.ts) with a fixture
// model: protocol round trips, prefix reuse, cancellation, errors a user can act on, and restarts after a crash.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, test } from "node:test";
import rpc from "vscode-jsonrpc/node.js";
import { buildDist, defaultKv, loadClientModule, scriptedModel, sidecarPath, tinyModel } from "./support/engine-client.mjs";
import { loadIndexer, makeTree, options, repoRoot, tempDir } from "./support/indexer.mjs";

buildDist();
const modelPath = tinyModel();
const { EngineClient, EngineStoppedError, inspectModel } = await loadClientModule();
const { indexer } = await loadIndexer();
const loadParams = { modelPath, device: "cpu", threads: 2, kv: defaultKv, contextTokens: 0 };

/** A client whose health changes and log lines are recorded; waitFor resolves when a health is reached. */
function makeClient(restart) {
  const healths = [];
  const lines = [];
  const waiters = [];
  const restarts = [];
  const client = new EngineClient({
    sidecarPath,
    restart,
    log: (line) => lines.push(line),
    onHealth: (health, detail) => {
      healths.push({ health, detail });
      for (const w of [...waiters]) {
        if (w.match(health, detail)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve({ health, detail });
        }
      }
    },
    onRestarted: (result) => restarts.push(result),
  });
  const waitFor = (match, ms = 20000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`health never matched; saw ${JSON.stringify(healths)}`)), ms);
      waiters.push({ match, resolve: (v) => (clearTimeout(timer), resolve(v)) });
    });
  /** Resolves once the client has restarted the sidecar `count` times and loaded the model again. */
  const restarted = async (count) => {
    const deadline = Date.now() + 20000;
    while (restarts.length < count) {
      if (Date.now() > deadline) throw new Error(`no restart; saw ${JSON.stringify(healths)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return { client, healths, lines, restarts, waitFor, restarted };
}

const repository = makeTree({
  "src/a.ts": "export function add(a: number, b: number) {\n  return a + b;\n}\n".repeat(20),
  "src/b.ts": "import { add } from './a';\nconsole.log(add(1, 2));\n".repeat(20),
  "README.md": "# demo\nA small repository for the sidecar tests.\n",
});

async function segmentsOf(root) {
  const result = await indexer.indexWorkspace(root, options({ name: "demo" }));
  return result.segments.map(({ id, text, hash, chainHash }) => ({ id, text, hash, chainHash }));
}

const main = makeClient();
let loaded;
before(async () => {
  loaded = await main.client.start(loadParams);
});
after(async () => {
  await main.client.stop();
});

test("engine/load answers the model's summary and the health goes starting → ok", () => {
  assert.equal(loaded.model.name, "tiny-f32");
  assert.equal(loaded.model.architecture, "llama");
  assert.equal(loaded.model.layers, 2);
  assert.equal(loaded.model.heads, 4);
  assert.equal(loaded.model.kvHeads, 2);
  assert.equal(loaded.model.vocab, 128256);
  assert.match(loaded.model.digest, /^[0-9a-f]{64}$/);
  assert.equal(loaded.contextTokens, 4096);
  assert.equal(loaded.device, "cpu");
  // Weights (the file) plus an f16 KV cache of 4096 tokens × 2 layers × 2 heads × 16 dims × K and V.
  assert.ok(loaded.memoryBytes >= loaded.model.fileBytes + 4096 * 256, `memoryBytes ${loaded.memoryBytes}`);
  assert.deepEqual(
    main.healths.slice(0, 2).map((h) => h.health),
    ["starting", "ok"],
  );
  assert.match(main.healths[1].detail, /tiny-f32 \(F32\), context 4,096 tokens, cpu, 2 threads/);
  assert.ok(main.lines.some((l) => /loaded .*tiny-f32\.gguf/.test(l)), "the sidecar's stderr reaches the log");
});

test("context/open prefills, reopening reuses everything, and an edit of the last file re-prefills only the tail", async () => {
  const segments = await segmentsOf(repository);
  const progress = [];
  const first = await main.client.openContext({ segments, snapshotDir: "" }, (p) => progress.push(p));
  assert.equal(first.source, "prefill");
  assert.equal(first.reusedTokens, 0);
  assert.equal(first.contextId, segments.at(-1).chainHash);
  assert.ok(first.tokens > 300, `tokens ${first.tokens}`);
  assert.ok(first.tokensPerSecond > 0);
  assert.ok(progress.length >= 2, "progress notifications arrive during the prefill");
  assert.deepEqual(progress.at(-1), { contextId: first.contextId, doneTokens: first.tokens, totalTokens: first.tokens, tokensPerSecond: progress.at(-1).tokensPerSecond });
  assert.ok(progress.at(-1).tokensPerSecond > 0);

  const again = await main.client.openContext({ segments, snapshotDir: "" });
  assert.deepEqual(
    { source: again.source, reusedTokens: again.reusedTokens, tokens: again.tokens, reusedSegments: again.reusedSegments },
    { source: "memory", reusedTokens: first.tokens, tokens: first.tokens, reusedSegments: segments.length },
  );

  // Files are ordered stable-first: the file written last comes last, right before the tail.
  const lastFile = segments.at(-2).id;
  const changed = await segmentsOf(makeTree({ [lastFile]: "changed\n" }, repository));
  const third = await main.client.openContext({ segments: changed, snapshotDir: "" });
  assert.equal(third.source, "prefill");
  assert.equal(third.reusedSegments, changed.findIndex((s, i) => s.chainHash !== segments[i].chainHash));
  assert.ok(third.reusedTokens > 0 && third.reusedTokens < third.tokens, `reused ${third.reusedTokens} of ${third.tokens}`);
});

test("chat/ask streams tokens, and a second question reuses the whole repository prefix", async () => {
  const segments = await segmentsOf(repository);
  const opened = await main.client.openContext({ segments, snapshotDir: "" });
  const question = { contextId: opened.contextId, messages: [{ role: "user", content: "What does add do?" }], maxTokens: 12 };
  const streamed = [];
  const one = await main.client.ask(question, (t) => streamed.push(t));
  assert.equal(one.stopReason, "length");
  assert.equal(one.stats.generatedTokens, 12);
  assert.equal(streamed.join(""), one.text);
  assert.equal(one.stats.reusedTokens, opened.tokens);
  assert.ok(one.stats.questionTokens > 5 && one.stats.questionTokens < 20, `questionTokens ${one.stats.questionTokens}`);
  assert.ok(one.stats.timeToFirstTokenMs > 0);

  const two = await main.client.ask(question, () => {});
  assert.equal(two.stats.reusedTokens, opened.tokens, "the second question reuses the prefix: only its own tokens are prefilled");
  assert.equal(two.stats.questionTokens, one.stats.questionTokens);
  // Greedy decoding over an unchanged prefix gives the same answer: the first question left no trace in it.
  assert.equal(two.text, one.text);
  const snapshotDir = tempDir();
  writeFileSync(join(snapshotDir, "saved.snap"), Buffer.alloc(1234));
  writeFileSync(join(snapshotDir, "saved.snap.tmp-1-abcd"), Buffer.alloc(99));
  const reopened = await main.client.openContext({ segments, snapshotDir });
  assert.equal(reopened.source, "memory");
  assert.equal(reopened.tokens, opened.tokens);

  const stats = await main.client.stats();
  assert.equal(stats.memory.diskBytes, 1234, "the disk tier counts the snapshot files, not temp files");
  assert.equal(stats.contextTokens, opened.tokens);
  // Measured by the engine per tier (HCAttention's host tier and codebooks included), not the f16 formula.
  assert.equal(stats.kvBytesInUse, stats.memory.fastBytes + stats.memory.hostBytes);
  assert.ok(stats.memory.fastBytes > 0, `fastBytes ${stats.memory.fastBytes}`);
  // The 25% budget's share of a plain f16 cache of 4096 tokens × 256 bytes.
  assert.equal(stats.kvBytesBudget, 4096 * 256 * 0.25);
  assert.equal(stats.model.name, "tiny-f32");
  assert.ok(stats.decodeTokensPerSecond > 0 && stats.prefillTokensPerSecond > 0);
  assert.ok(stats.rssBytes > loaded.model.fileBytes / 2, `rss ${stats.rssBytes}`);
});

test("$/cancelRequest stops decoding within a token or two and leaves the prefix intact", async () => {
  const segments = await segmentsOf(repository);
  const opened = await main.client.openContext({ segments, snapshotDir: "" });
  const source = new rpc.CancellationTokenSource();
  let afterCancel = 0;
  const cancelAt = 3;
  let received = 0;
  const result = await main.client.ask(
    { contextId: opened.contextId, messages: [{ role: "user", content: "Explain everything." }], maxTokens: 3000 },
    () => {
      received++;
      if (source.token.isCancellationRequested) afterCancel++;
      if (received === cancelAt) source.cancel();
    },
    source.token,
  );
  assert.equal(result.stopReason, "cancelled");
  assert.ok(result.stats.generatedTokens < 20, `generated ${result.stats.generatedTokens} tokens after a cancel at token ${cancelAt}`);
  // The engine checks the flag before every token; what still arrives was already generated or on the wire
  // while the cancel travelled (the test model makes a token in about a millisecond, more on a busy machine).
  assert.ok(afterCancel <= 6, `${afterCancel} tokens arrived after the cancel`);
  const reopened = await main.client.openContext({ segments, snapshotDir: "" });
  assert.equal(reopened.source, "memory");
  assert.equal(reopened.tokens, opened.tokens);
});

test("cancelling context/open keeps the finished files, and the next open prefills only the rest", async () => {
  const files = {};
  for (let i = 0; i < 12; i++) files[`src/part${String(i).padStart(2, "0")}.ts`] = `export const value${i} = ${i};\n`.repeat(25);
  const segments = await segmentsOf(makeTree(files));
  const source = new rpc.CancellationTokenSource();
  const progress = [];
  await assert.rejects(
    main.client.openContext(
      { segments, snapshotDir: "" },
      (p) => {
        progress.push(p);
        if (p.doneTokens > 0) source.cancel();
      },
      source.token,
    ),
    (error) => error.code === -32800 && /^Prefill cancelled after [\d,]+ of [\d,]+ tokens; the finished files are kept/.test(error.message),
  );
  const total = progress[0].totalTokens;
  const resumed = await main.client.openContext({ segments, snapshotDir: "" });
  assert.equal(resumed.tokens, total);
  assert.equal(resumed.source, "prefill");
  assert.ok(resumed.reusedSegments > 0 && resumed.reusedSegments < segments.length, `reused ${resumed.reusedSegments} segments`);
  assert.ok(resumed.reusedTokens > 0 && resumed.reusedTokens < total, `reused ${resumed.reusedTokens} of ${total} tokens`);
});

test("a workspace larger than the context is refused with its size and what to change", async () => {
  const files = {};
  for (let i = 0; i < 12; i++) files[`src/big${i}.ts`] = `export const value${i} = ${i};\n`.repeat(40);
  const current = await segmentsOf(repository);
  const opened = await main.client.openContext({ segments: current, snapshotDir: "" });
  const segments = await segmentsOf(makeTree(files));
  await assert.rejects(
    main.client.openContext({ segments, snapshotDir: "" }),
    (error) =>
      error.code === 1003 &&
      /^The workspace is [\d,]+ tokens but the context holds 4,096\. Exclude folders with repoLlama\.index\.exclude or \.repollamaignore/.test(error.message),
  );
  const unchanged = await main.client.openContext({ segments: current, snapshotDir: "" });
  assert.deepEqual([unchanged.source, unchanged.reusedTokens], ["memory", opened.tokens], "a refused workspace leaves the context as it was");
});

test("chat/ask with a context id that a newer context/open replaced is refused with what to do", async () => {
  await assert.rejects(
    main.client.ask({ contextId: "0".repeat(64), messages: [{ role: "user", content: "hi" }], maxTokens: 4 }, () => {}),
    (error) => error.code === 1004 && /open it again with context\/open/.test(error.message),
  );
});

test("a request made while the model is still loading waits for the load", async () => {
  const { client, healths } = makeClient();
  const starting = client.start(loadParams);
  const stats = await client.stats();
  assert.equal(stats.model.name, "tiny-f32");
  assert.equal(healths[0].health, "starting");
  await starting;
  await client.stop();
});

test("the scripted fixture model answers its script, streamed token by token, through the real sidecar", async () => {
  const { DEFAULT_SCRIPT } = createRequire(import.meta.url)(join(repoRoot, "dist", "fixtures.js"));
  const { client } = makeClient();
  await client.start({ ...loadParams, modelPath: scriptedModel() });
  const opened = await client.openContext({ segments: await segmentsOf(repository), snapshotDir: "" });
  for (const question of ["Where does the server start?", "And then?"]) {
    const streamed = [];
    const answer = await client.ask({ contextId: opened.contextId, messages: [{ role: "user", content: question }], maxTokens: 200 }, (t) =>
      streamed.push(t),
    );
    assert.equal(answer.text, DEFAULT_SCRIPT);
    assert.equal(answer.stopReason, "eog");
    assert.equal(streamed.join(""), DEFAULT_SCRIPT);
    assert.ok(streamed.length > 10, `${streamed.length} chat/token notifications`);
    assert.equal(answer.stats.reusedTokens, opened.tokens);
  }
  await client.stop();
});

test("engine/shutdown ends the sidecar with status 0; a sidecar whose stdin closes exits by itself", async () => {
  const { client, lines } = makeClient();
  await client.start(loadParams);
  const pid = client.pid;
  await client.stop();
  assert.ok(lines.includes("the engine sidecar ended: it exited with code 0"), lines.join("\n"));
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" });

  const orphan = spawn(process.execPath, [sidecarPath], { stdio: ["pipe", "ignore", "ignore"] });
  const exited = new Promise((resolve) => orphan.on("exit", (code) => resolve(code)));
  orphan.stdin.end();
  assert.equal(await exited, 0);
});

test("a file that is not GGUF is refused with a message that says what to do", async () => {
  const { client } = makeClient();
  const notModel = join(tempDir(), "notes.gguf");
  writeFileSync(notModel, "just some text, not a model\n");
  await assert.rejects(
    client.start({ ...loadParams, modelPath: notModel }),
    (error) =>
      error.code === 1002 &&
      /notes\.gguf is not a GGUF model: it starts with .* instead of "GGUF"\. Choose a Llama-3 model in GGUF format with "Repo Llama: Select Model"/.test(error.message),
  );
  assert.equal(client.health, "error");
  await client.stop();
});

test("model/inspect validates a file with the engine and describes it; a truncated GGUF gets a readable refusal", async () => {
  const summary = await inspectModel({ sidecarPath }, modelPath);
  assert.deepEqual(
    { name: summary.name, quantization: summary.quantization, nCtxTrain: summary.nCtxTrain, layers: summary.layers, vocab: summary.vocab },
    { name: "tiny-f32", quantization: "F32", nCtxTrain: 4096, layers: 2, vocab: 128256 },
  );
  assert.equal(summary.digest, loaded.model.digest, "the same digest engine/load reports");
  assert.ok(summary.parameters > 16_000_000 && summary.parameters < 17_000_000, `parameters ${summary.parameters}`);

  const dir = tempDir();
  const truncated = join(dir, "truncated.gguf");
  const whole = readFileSync(modelPath);
  writeFileSync(truncated, whole.subarray(0, whole.length >> 1));
  await assert.rejects(
    inspectModel({ sidecarPath }, truncated),
    (error) => error.code === 1002 && /^truncated\.gguf cannot be used: .*invalid GGUF: tensor '[^']+' .*run past end of file .*download it again\)\.$/.test(error.message),
  );
  await assert.rejects(inspectModel({ sidecarPath }, join(dir, "missing.gguf")), (error) => error.code === 1002 && / does not exist\.$/.test(error.message));
});

test("the memory guard refuses a plain cache (allocated whole) that would not fit and says how much it needs", async () => {
  const { client } = makeClient();
  // 2e9 tokens × 256 bytes of f16 KV per token, measured by the engine: about 477 GiB.
  await assert.rejects(
    client.start({ ...loadParams, kv: { ...defaultKv, budget: "full" }, contextTokens: 2_000_000_000 }),
    (error) =>
      error.code === 1003 &&
      /^The repository context of 2,000,000,000 tokens needs 476\.8 GiB of RAM where [\d.]+ GiB is available \(KV budget full: fast tier \(RAM\) 476\.8 GiB at 256 B\/token, host tier \(RAM\) 0\.00 GiB at 0 B\/token\)\. About [\d,]+ tokens fit: .* A plain \("full"\) cache is allocated whole: lower repoLlama\.contextBudgetTokens or use an HCAttention budget\.$/.test(
        error.message,
      ),
  );
  assert.equal(client.health, "error");
  await client.stop();
});

test("a SIGKILLed sidecar is restarted and the model loaded again; a request in flight fails with a clear error", async () => {
  const run = makeClient({ firstDelayMs: 50 });
  await run.client.start(loadParams);
  const segments = await segmentsOf(repository);
  const opened = await run.client.openContext({ segments, snapshotDir: "" });
  const firstPid = run.client.pid;
  const asking = run.client.ask({ contextId: opened.contextId, messages: [{ role: "user", content: "Go on." }], maxTokens: 3000 }, () => {
    process.kill(firstPid, "SIGKILL");
  });
  await assert.rejects(asking, (error) => error instanceof EngineStoppedError && /stopped while working on the request: it was ended by SIGKILL/.test(error.message));
  assert.ok(run.healths.some((h) => h.health === "error" && /stopped unexpectedly \(it was ended by SIGKILL\); restarting in 0\.1 s/.test(h.detail)));
  await run.restarted(1);
  assert.equal(run.client.health, "ok");
  assert.notEqual(run.client.pid, firstPid);
  assert.equal(run.restarts[0].model.name, "tiny-f32");
  const reopened = await run.client.openContext({ segments, snapshotDir: "" });
  assert.equal(reopened.source, "prefill", "a new sidecar starts with an empty context");
  assert.equal(reopened.tokens, opened.tokens);
  await run.client.stop();
  assert.equal(run.client.health, "stopped");
});

test("after maxCrashes crashes within the window the client gives up with an actionable error", async () => {
  const run = makeClient({ firstDelayMs: 20, maxCrashes: 2, windowMs: 60_000 });
  await run.client.start(loadParams);
  process.kill(run.client.pid, "SIGKILL");
  await run.restarted(1);
  const gaveUp = run.waitFor((h, detail) => h === "error" && detail.includes("crashed 2 times"));
  process.kill(run.client.pid, "SIGKILL");
  const { detail } = await gaveUp;
  assert.match(detail, /crashed 2 times within a minute \(last: it was ended by SIGKILL\) and is not restarted\. Check the engine log/);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(run.client.pid, undefined, "no restart after giving up");
  assert.equal(run.restarts.length, 1);
  await assert.rejects(run.client.stats(), EngineStoppedError);
});
