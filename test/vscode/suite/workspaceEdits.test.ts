// Edits with a context open: the file watcher re-indexes the workspace, the context is updated in the
// background, and only the tail from the first changed segment is prefilled again (the engine reuses the
// prefix before it). A question asked while such an update runs waits for it, showing its progress, and
// then needs no prefill of its own. The real sidecar and engine, with the scripted fixture model.
import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import type { RepoLlamaApi } from "../../../src/extension";
import { scriptedFixture, writeFixtures } from "../../fixtures/cli";

const EXTENSION_ID = "repo-llama.repo-llama";
const ANSWER = "The price is formatted in src/price.ts:2.";

suite("Repo Llama follows edits of the workspace", () => {
  let api: RepoLlamaApi;
  let modelDir: string;
  let folder: vscode.Uri;
  const created: vscode.Uri[] = [];
  const restore = new Map<string, Uint8Array>();

  suiteSetup(async function () {
    this.timeout(120_000);
    const extension = vscode.extensions.getExtension<RepoLlamaApi>(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not installed in this VS Code`);
    api = await extension.activate();
    folder = vscode.workspace.workspaceFolders![0].uri;
    modelDir = mkdtempSync(join(tmpdir(), "repo-llama-edits-"));
    const [written] = writeFixtures(modelDir, [scriptedFixture(ANSWER)]);
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", written.path, vscode.ConfigurationTarget.Global);
    api.chat.newChat();
    // A first question opens the context that the edits then change.
    const first = await api.chat.ask("Where is the price formatted?");
    assert.equal(first.text, ANSWER);
  });

  suiteTeardown(async function () {
    this.timeout(60_000);
    for (const [path, bytes] of restore) await vscode.workspace.fs.writeFile(vscode.Uri.joinPath(folder, path), bytes);
    for (const uri of created) await vscode.workspace.fs.delete(uri);
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", undefined, vscode.ConfigurationTarget.Global);
    rmSync(modelDir, { recursive: true, force: true });
  });

  test("an edit re-prefills only the tail from the first changed segment, in the background; the next answer prefills nothing", async function () {
    this.timeout(120_000);
    const before = (await api.indexResult()).segments;
    const opened = api.chat.context();
    assert.ok(opened, "the first question opened a context");

    const price = vscode.Uri.joinPath(folder, "src", "price.ts");
    const original = await vscode.workspace.fs.readFile(price);
    restore.set("src/price.ts", original);
    await vscode.workspace.fs.writeFile(price, Buffer.concat([Buffer.from(original), Buffer.from("// Prices are rounded to cents.\n")]));

    // No question is asked: the watcher and the background update do it all.
    // The context the update opened: part reused, part prefilled (the first question's had nothing to reuse).
    const isUpdate = () => {
      const c = api.chat.context();
      return c !== undefined && c.source === "prefill" && c.reusedTokens > 0 && c.prefilledTokens > 0;
    };
    assert.ok(!isUpdate(), JSON.stringify(opened));
    await until(isUpdate, 60_000, "the background update after the edit");
    const after = (await api.indexResult()).segments;
    const firstChanged = after.findIndex((s, i) => s.chainHash !== before[i]?.chainHash);
    assert.ok(firstChanged > 0, `the edit changed segment ${firstChanged}`);
    const updated = api.chat.context()!;
    assert.deepEqual(
      { reusedSegments: updated.reusedSegments, prefilledFrom: updated.prefilledFrom, changedFiles: updated.changedFiles },
      { reusedSegments: firstChanged, prefilledFrom: after[firstChanged].id, changedFiles: ["src/price.ts"] },
      "reused: exactly the segments before the first changed one; the edited file is the one named as changed",
    );
    assert.ok(updated.reusedTokens > 0 && updated.prefilledTokens > 0, JSON.stringify(updated));
    assert.equal(updated.reusedTokens + updated.prefilledTokens, updated.tokens);
    assert.ok(updated.prefilledTokens < updated.tokens, "not everything was prefilled again");

    const outcome = await api.chat.ask("Where is the price formatted now?");
    assert.equal(outcome.text, ANSWER);
    assert.equal(outcome.stats?.reusedTokens, updated.tokens, "the answer reuses the whole updated context");
    const now = api.chat.context();
    assert.deepEqual({ source: now?.source, prefilled: now?.prefilledTokens }, { source: "memory", prefilled: 0 });
  });

  test("a question asked during a background update waits for it with progress, then prefills no repository tokens", async function () {
    this.timeout(120_000);
    // About 9,000 tokens: seconds of prefill with this model on two cores.
    const big = vscode.Uri.joinPath(folder, "src", "notes-big.txt");
    created.push(big);
    const lines = Array.from({ length: 1000 }, (_, i) => `note ${i}: the amount ${i * 3} is kept in cents\n`).join("");
    await vscode.workspace.fs.writeFile(big, Buffer.from(lines));

    await until(() => api.chat.progress() !== undefined, 60_000, "the background update's progress");
    const during = api.chat.progress()!;
    assert.ok(during.totalTokens > 9000 && during.doneTokens < during.totalTokens, JSON.stringify(during));
    const outcome = await api.chat.ask("What do the notes say?");
    assert.equal(outcome.stopReason, "eog");
    assert.equal(outcome.text, ANSWER);
    const context = api.chat.context()!;
    assert.equal(context.tokens, during.totalTokens, "the question got the updated context");
    assert.deepEqual({ source: context.source, prefilled: context.prefilledTokens }, { source: "memory", prefilled: 0 }, "the update had prepared all of it");
    assert.equal(outcome.stats?.reusedTokens, context.tokens);
    assert.equal(api.chat.progress(), undefined);
  });
});

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
