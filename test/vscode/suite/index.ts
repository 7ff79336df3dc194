// Entry point of the extension test run (the `extensionTestsPath` contract of @vscode/test-electron): VS Code
// loads this module in the extension host and waits for run() to settle. It runs every *.test.js next to it
// with mocha and writes the counts to results.json, which test/vscode/run.mjs turns into its summary line.
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Mocha from "mocha";
import * as vscode from "vscode";

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: "tdd", color: false, timeout: 60_000 });
  const files = readdirSync(__dirname).filter((file) => file.endsWith(".test.js")).sort();
  for (const file of files) mocha.addFile(join(__dirname, file));
  // The launcher prints the extension host's console from this line on (see test/vscode/launcher.mjs).
  console.log(`vscode-suite: ${files.length} test files in VS Code ${vscode.version} (${vscode.env.appHost}, ${vscode.env.appName})`);
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      const { passes = 0, pending = 0 } = runner.stats ?? {};
      writeFileSync(join(__dirname, "results.json"), JSON.stringify({ passes, failures, pending }));
      if (failures > 0) reject(new Error(`${failures} of ${passes + failures} VS Code tests failed`));
      else resolve();
    });
  });
}
