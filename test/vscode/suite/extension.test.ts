// Runs inside the real VS Code extension host with the extension under development (the repository root,
// built into dist/) and the fixture workspace written by test/vscode/run.mjs.
import * as assert from "node:assert/strict";
import * as vscode from "vscode";
import type { RepoLlamaApi } from "../../../src/extension";
import type { IndexStats } from "../../../src/workspace/types";
import { expectedSummary } from "./fixture";

const EXTENSION_ID = "repo-llama.repo-llama";

interface ContributedCommand {
  command: string;
  title: string;
}

suite("Repo Llama in VS Code", () => {
  let extension: vscode.Extension<RepoLlamaApi>;
  let api: RepoLlamaApi;

  suiteSetup(async () => {
    const found = vscode.extensions.getExtension<RepoLlamaApi>(EXTENSION_ID);
    assert.ok(found, `extension ${EXTENSION_ID} is not installed in this VS Code (is the repository root the development path?)`);
    extension = found;
    api = await extension.activate();
  });

  test("activates and returns its API", () => {
    assert.equal(extension.isActive, true);
    assert.equal(typeof api?.indexSummary, "function", "activate() must return an object with indexSummary()");
  });

  test("registers every command it contributes", async () => {
    const contributed = (extension.packageJSON.contributes.commands as ContributedCommand[]).map((c) => c.command);
    assert.ok(contributed.length >= 6, `package.json contributes only ${contributed.length} commands`);
    const registered = new Set(await vscode.commands.getCommands(true));
    assert.deepEqual(
      contributed.filter((id) => !registered.has(id)),
      [],
      "contributed in package.json but not registered",
    );
  });

  test("indexes the fixture workspace: exact files, bytes and skips", async () => {
    const folders = vscode.workspace.workspaceFolders ?? [];
    assert.equal(folders.length, 1, "the test run must open exactly the fixture workspace");
    const stats = await withinMs(api.indexSummary(), 30_000, "the first index of the fixture workspace");
    const expected = expectedSummary();
    assert.deepEqual({ files: stats.files, bytes: stats.bytes, skipped: withoutZeros(stats.skipped) }, expected);
    assert.ok(stats.estimatedTokens > 0 && stats.estimatedTokens < expected.bytes, `estimatedTokens ${stats.estimatedTokens}`);
  });

  test("Explain Repository without a model answers with the no-model message", async () => {
    const outcome = await vscode.commands.executeCommand<{ kind: string; message: string }>("repoLlama.explainRepository");
    assert.equal(outcome?.kind, "noModel");
    assert.match(outcome.message, /No model is configured/);
  });
});

function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function withoutZeros(skipped: IndexStats["skipped"]): IndexStats["skipped"] {
  return Object.fromEntries(Object.entries(skipped).filter(([, count]) => (count ?? 0) > 0));
}
