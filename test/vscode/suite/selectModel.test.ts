// "Select Model" with the engine's validation: a truncated GGUF is refused with the engine's reason and
// leaves the setting as it was; a valid model is set and described (name, parameters, quantization, context
// length). The files are real: a scripted fixture model written at test time and a truncated copy of it.
import * as assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vscode from "vscode";
import type { SelectOutcome } from "../../../src/commands/selectModel";
import { scriptedFixture, writeFixtures } from "../../fixtures/cli";

suite("Select Model validates the file with the engine", () => {
  let dir: string;
  let model: string;
  let truncated: string;
  const modelPath = () => vscode.workspace.getConfiguration("repoLlama").get<string>("modelPath");
  const select = (file: string) => vscode.commands.executeCommand<SelectOutcome>("repoLlama.selectModel", vscode.Uri.file(file));

  suiteSetup(function () {
    this.timeout(60_000);
    dir = mkdtempSync(join(tmpdir(), "repo-llama-select-"));
    [{ path: model }] = writeFixtures(dir, [scriptedFixture("Selected.")]);
    truncated = join(dir, "truncated.gguf");
    const whole = readFileSync(model);
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length * 0.6)));
  });

  suiteTeardown(async () => {
    await vscode.workspace.getConfiguration("repoLlama").update("modelPath", undefined, vscode.ConfigurationTarget.Global);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a truncated GGUF is refused with the engine's reason and the setting is unchanged", async function () {
    this.timeout(60_000);
    const before = modelPath();
    const outcome = await select(truncated);
    assert.equal(outcome?.kind, "rejected", JSON.stringify(outcome));
    assert.match(outcome.problem, /^truncated\.gguf cannot be used: .*invalid GGUF: .*run past end of file .*download it again\)\.$/);
    assert.equal(modelPath(), before);
  });

  test("a valid model is set and summarised; picking a bad file afterwards keeps it", async function () {
    this.timeout(60_000);
    const outcome = await select(model);
    assert.equal(outcome?.kind, "selected", JSON.stringify(outcome));
    const { name, architecture, parameters, quantization, nCtxTrain, fileBytes } = outcome.model;
    assert.deepEqual({ name, architecture, quantization }, { name: "scripted", architecture: "llama", quantization: "F16" });
    assert.ok(parameters > 1e6 && parameters < 1e9, `parameters ${parameters}`);
    assert.equal(
      outcome.summary,
      `scripted, ${(parameters / 1e6).toFixed(1)}M parameters, F16, context ${nCtxTrain.toLocaleString("en-US")} tokens, ` +
        `${(fileBytes / 2 ** 20).toFixed(1)} MB`,
    );
    assert.equal(modelPath(), model);

    const again = await select(truncated);
    assert.equal(again?.kind, "rejected");
    assert.equal(modelPath(), model, "the old setting is kept");
  });
});
