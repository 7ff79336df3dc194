// The chat and Explain Repository with a real model: a scripted fixture model (its greedy answer is
// CHAT_SCRIPT) written at test time, repoLlama.modelPath pointing at it, and the real sidecar and engine
// behind the extension. Runs after extension.test.ts, which needs the no-model state (files run sorted).
import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import { findCitations, knownCitedPaths } from "../../../src/chat/citations";
import type { RepoLlamaApi } from "../../../src/extension";
import { scriptedFixture, writeFixtures } from "../../fixtures/cli";
import { CHAT_SCRIPT, CITED_LINE, CITED_PATH } from "./chatScript";

const EXTENSION_ID = "repo-llama.repo-llama";

suite("Repo Llama with a scripted model", () => {
  let api: RepoLlamaApi;
  let modelDir: string;

  suiteSetup(async function () {
    this.timeout(120_000);
    const extension = vscode.extensions.getExtension<RepoLlamaApi>(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
    api = await extension.activate();
    modelDir = mkdtempSync(join(tmpdir(), "repo-llama-scripted-"));
    const [written] = writeFixtures(modelDir, [scriptedFixture(CHAT_SCRIPT)]);
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
    assert.equal(streamed, CHAT_SCRIPT, "the streamed tokens put together are the scripted answer");
    assert.equal(outcome.text, CHAT_SCRIPT);
    assert.ok(pieces > 10, `the answer arrived in ${pieces} pieces, expected one per token`);
    const last = api.chat.history().at(-1);
    assert.deepEqual(
      { question: last?.question, answer: last?.answer, status: last?.status, citedPaths: last?.citedPaths },
      { question: "Where is the total computed?", answer: CHAT_SCRIPT, status: "done", citedPaths: [CITED_PATH] },
    );
  });

  test("a follow-up question sends the conversation and gets its own answer", async function () {
    this.timeout(120_000);
    const outcome = await api.chat.ask("And where is the price formatted?");
    assert.equal(outcome.text, CHAT_SCRIPT);
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

  test("Stop cancels the answer in the engine within a token or two", async function () {
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
    assert.ok(CHAT_SCRIPT.startsWith(streamed), `what arrived is not the start of the script: ${JSON.stringify(streamed)}`);
    // One token may already be on its way when $/cancelRequest arrives; the engine checks before each next one.
    assert.ok(pieces - atStop <= 2, `${pieces - atStop} tokens arrived after Stop`);
    assert.ok(streamed.length < CHAT_SCRIPT.length / 2, `${streamed.length} of ${CHAT_SCRIPT.length} characters arrived`);
    const last = api.chat.history().at(-1);
    assert.deepEqual({ status: last?.status, answer: last?.answer }, { status: "stopped", answer: streamed });
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
    assert.equal(outcome.text, CHAT_SCRIPT);
    assert.equal(outcome.stopped, false);
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === outcome.uri);
    assert.ok(document, "the overview's document is open");
    assert.equal(document.languageId, "markdown");
    assert.equal(document.isUntitled, true);
    assert.equal(document.getText(), CHAT_SCRIPT);
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
