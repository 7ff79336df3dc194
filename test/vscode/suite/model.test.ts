// The chat and Explain Repository with a real model: a scripted fixture model (its greedy answer is
// longChatScript: CHAT_SCRIPT and a few hundred more tokens, so that Stop and a crash land mid-answer)
// written at test time, repoLlama.modelPath pointing at it, and the real sidecar and engine
// behind the extension. Runs after extension.test.ts, which needs the no-model state (files run sorted).
import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import { findCitations, knownCitedPaths } from "../../../src/chat/citations";
import type { RepoLlamaApi } from "../../../src/extension";
import { scriptedFixture, tokenBytesIndex, writeFixtures } from "../../fixtures/cli";
import { CHAT_SCRIPT, CITED_LINE, CITED_PATH, longChatScript } from "./chatScript";

/** ~300 tokens: a few seconds of decoding with this model on two cores. */
const SCRIPT_WORDS = 250;

const EXTENSION_ID = "repo-llama.repo-llama";

suite("Repo Llama with a scripted model", () => {
  let api: RepoLlamaApi;
  let modelDir: string;
  let script: string;

  suiteSetup(async function () {
    this.timeout(120_000);
    const extension = vscode.extensions.getExtension<RepoLlamaApi>(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
    api = await extension.activate();
    modelDir = mkdtempSync(join(tmpdir(), "repo-llama-scripted-"));
    script = longChatScript(tokenBytesIndex().keys(), SCRIPT_WORDS);
    const [written] = writeFixtures(modelDir, [scriptedFixture(script)]);
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", written.path, vscode.ConfigurationTarget.Global);
    api.chat.newChat();
  });

  suiteTeardown(async () => {
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", undefined, vscode.ConfigurationTarget.Global);
    rmSync(modelDir, { recursive: true, force: true });
  });

  test("a question streams the model's answer through the engine, and it joins the history", async function () {
    this.timeout(120_000);
    let streamed = "";
    let pieces = 0;
    const outcome = await api.chat.ask("Where is the total computed?", (text) => {
      streamed += text;
      pieces++;
    });
    assert.equal(outcome.stopReason, "eog");
    assert.equal(streamed, script, "the streamed tokens put together are the scripted answer");
    assert.equal(outcome.text, script);
    assert.ok(pieces > 10, `the answer arrived in ${pieces} pieces, expected one per token`);
    const last = api.chat.history().at(-1);
    assert.deepEqual(
      { question: last?.question, answer: last?.answer, status: last?.status, citedPaths: last?.citedPaths },
      { question: "Where is the total computed?", answer: script, status: "done", citedPaths: [CITED_PATH] },
    );
  });

  test("a follow-up question sends the conversation and gets its own answer", async function () {
    this.timeout(120_000);
    const outcome = await api.chat.ask("And where is the price formatted?");
    assert.equal(outcome.text, script);
    const [first, second] = api.chat.history();
    assert.deepEqual(
      [first.status, second.status],
      ["done", "done"],
    );
    assert.ok(first.stats && second.stats, "the entries keep the engine's figures");
    // The repository prefix is reused as it is; only the conversation is prefilled for the follow-up.
    assert.ok(first.stats.reusedTokens > 100, `reusedTokens ${first.stats.reusedTokens}`);
    assert.equal(second.stats.reusedTokens, first.stats.reusedTokens);
    assert.ok(second.stats.questionTokens > first.stats.questionTokens + first.stats.generatedTokens - 1, "the follow-up carries the first turn");
    assert.equal(second.stats.generatedTokens, first.stats.generatedTokens);
  });

  test("after an engine restart the context comes back from its saved snapshot, not a prefill", async function () {
    this.timeout(120_000);
    const first = api.chat.context();
    assert.equal(first?.source, "memory", "the follow-up reused the context in memory");
    // The sidecar saves the snapshot after the prefill; engine/stats counts the saved bytes.
    await untilAsync(async () => (await api.engine.stats()).memory.diskBytes > 0, 30_000, "the snapshot save");
    const pid = api.engine.pid;
    assert.ok(pid, "the engine sidecar is running");
    process.kill(pid, "SIGKILL");
    await until(() => api.engine.health === "ok" && api.engine.pid !== undefined && api.engine.pid !== pid, 30_000, "the engine restart");

    const outcome = await api.chat.ask("Answer again from the saved context.");
    assert.equal(outcome.text, script);
    const reopened = api.chat.context();
    assert.equal(reopened?.source, "disk", JSON.stringify(reopened));
    assert.equal(reopened.tokens, first.tokens);
    assert.equal(reopened.reusedTokens, first.tokens, "every token of the context was loaded, none prefilled");
    assert.ok(reopened.openSeconds !== undefined && reopened.openSeconds > 0, `openSeconds ${reopened.openSeconds}`);
  });

  test("Stop cancels the answer in the engine: at most a few tokens arrive after it", async function () {
    this.timeout(120_000);
    let streamed = "";
    let atStop = -1;
    let pieces = 0;
    const outcome = await api.chat.ask("Stop me after the first word.", (text) => {
      streamed += text;
      if (++pieces === 3) {
        atStop = pieces;
        api.chat.stop();
      }
    });
    assert.equal(outcome.stopReason, "cancelled");
    assert.ok(script.startsWith(streamed), `what arrived is not the start of the script: ${JSON.stringify(streamed)}`);
    // The engine checks for cancellation before each token; what else arrives was already in the pipe (or
    // generated while a busy extension host had not yet read the token that asked to stop).
    assert.ok(pieces - atStop <= 5, `${pieces - atStop} tokens arrived after Stop`);
    assert.ok(streamed.length < CHAT_SCRIPT.length, `${streamed.length} characters arrived, more than the first part of the script`);
    const last = api.chat.history().at(-1);
    assert.deepEqual({ status: last?.status, answer: last?.answer }, { status: "stopped", answer: streamed });
  });

  test("a sidecar killed in the middle of an answer: a clear message, a restart, the history intact", async function () {
    this.timeout(120_000);
    const before = api.chat.history().map((e) => e.id);
    const pid = api.engine.pid;
    assert.ok(pid, "the engine sidecar is running");
    let pieces = 0;
    const failure = await api.chat
      .ask("Crash while you answer.", () => {
        if (++pieces === 3) process.kill(pid, "SIGKILL");
      })
      .then(
        () => undefined,
        (error: Error) => error,
      );
    assert.ok(failure, "the answer did not fail although its sidecar was killed");
    assert.match(failure.message, /engine stopped while working on the request: it was ended by SIGKILL\. The engine restarts by itself; ask again/);
    const entries = api.chat.history();
    assert.deepEqual(entries.slice(0, -1).map((e) => e.id), before, "the earlier entries are kept");
    assert.deepEqual({ status: entries.at(-1)?.status, error: entries.at(-1)?.error }, { status: "failed", error: failure.message });

    await until(() => api.engine.health === "ok" && api.engine.pid !== undefined && api.engine.pid !== pid, 30_000, "the engine restart");
    const again = await api.chat.ask("Now answer in full.");
    assert.equal(again.text, script);
  });

  test("a citation opens the cited file at its line", async () => {
    const editor = await api.chat.openCitation(CITED_PATH, CITED_LINE);
    assert.ok(editor, "openCitation returned no editor");
    assert.ok(editor.document.uri.path.endsWith(`/${CITED_PATH}`), editor.document.uri.toString());
    assert.equal(editor.selection.active.line, CITED_LINE - 1);
    assert.match(editor.document.lineAt(CITED_LINE - 1).text, /^export function total/);
    assert.equal(await api.chat.openCitation("lib/missing.ts", 3), undefined, "a path outside the index opens nothing");
  });

  test("Explain Repository streams the overview into a new markdown editor", async function () {
    this.timeout(120_000);
    const outcome = await vscode.commands.executeCommand<{ kind: string; uri: string; text: string; stopped: boolean }>(
      "repoLlama.explainRepository",
    );
    assert.equal(outcome?.kind, "explained", JSON.stringify(outcome));
    assert.equal(outcome.text, script);
    assert.equal(outcome.stopped, false);
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === outcome.uri);
    assert.ok(document, "the overview's document is open");
    assert.equal(document.languageId, "markdown");
    assert.equal(document.isUntitled, true);
    assert.equal(document.getText(), script);
  });

  test("citations: path:line and ranges are found; only indexed paths count", () => {
    const text = "See src/cart.ts:5, lib/gone.py:9-12 and README.md:1 (not http://host:8080 or 10:30).";
    assert.deepEqual(
      findCitations(text).map(({ path, line, endLine }) => ({ path, line, endLine })),
      [
        { path: "src/cart.ts", line: 5, endLine: undefined },
        { path: "lib/gone.py", line: 9, endLine: 12 },
        { path: "README.md", line: 1, endLine: undefined },
      ],
    );
    const indexed = new Set(["src/cart.ts", "README.md"]);
    assert.deepEqual(knownCitedPaths(text, (p) => indexed.has(p)), ["src/cart.ts", "README.md"]);
  });

  test("New Chat empties the history", () => {
    api.chat.newChat();
    assert.deepEqual(api.chat.history(), []);
  });
});

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function untilAsync(condition: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
