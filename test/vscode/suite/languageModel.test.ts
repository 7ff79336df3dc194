// The local model in VS Code's language model API (languageModelChatProviders, VS Code ≥ 1.104): it is listed
// by vscode.lm.selectChatModels once the engine has loaded it, and a request streams the engine's answer
// (the scripted fixture model's text) through the real sidecar. Skipped with the reason on an older VS Code.
import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import type { RepoLlamaApi } from "../../../src/extension";
import { scriptedFixture, writeFixtures } from "../../fixtures/cli";

const ANSWER = "Answered through the language model API.";

suite("Repo Llama as a VS Code language model", () => {
  let modelDir: string;

  suiteSetup(async function () {
    this.timeout(120_000);
    const lm = vscode.lm as typeof vscode.lm & { registerLanguageModelChatProvider?: unknown };
    if (typeof lm.registerLanguageModelChatProvider !== "function") {
      console.log(`languageModelChatProviders: VS Code ${vscode.version} has no such API; skipped`);
      this.skip();
    }
    const extension = vscode.extensions.getExtension<RepoLlamaApi>("repo-llama.repo-llama");
    assert.ok(extension);
    const api = await extension.activate();
    modelDir = mkdtempSync(join(tmpdir(), "repo-llama-lm-"));
    const [written] = writeFixtures(modelDir, [scriptedFixture(ANSWER)]);
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", written.path, vscode.ConfigurationTarget.Global);
    const deadline = Date.now() + 60_000;
    while (api.engine.model?.model.name !== "scripted" || api.engine.health !== "ok") {
      if (Date.now() > deadline) throw new Error(`the engine did not load the model (${api.engine.health})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  suiteTeardown(async () => {
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", undefined, vscode.ConfigurationTarget.Global);
    if (modelDir) rmSync(modelDir, { recursive: true, force: true });
  });

  test("selectChatModels lists the loaded model and a request streams its answer", async function () {
    this.timeout(120_000);
    let models: vscode.LanguageModelChat[] = [];
    const deadline = Date.now() + 30_000;
    while (models.length === 0 && Date.now() < deadline) {
      models = await vscode.lm.selectChatModels({ vendor: "repo-llama" });
      if (models.length === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(models.length, 1, "the provider lists one model");
    const [model] = models;
    assert.equal(model.name, "Repo Llama: scripted");
    assert.equal(model.family, "llama");
    assert.ok(model.maxInputTokens > 0);
    const response = await model.sendRequest([vscode.LanguageModelChatMessage.User("How do I answer?")], {}, new vscode.CancellationTokenSource().token);
    let text = "";
    let parts = 0;
    for await (const piece of response.text) {
      text += piece;
      parts++;
    }
    assert.equal(text, ANSWER);
    assert.ok(parts > 1, `the answer streamed in ${parts} parts`);
  });
});
