// npm run test:vscode — the mocha suite in test/vscode/suite inside a real VS Code, started by
// @vscode/test-electron's runTests with the extension at the repository root (built: dist/extension.js)
// and a fixture workspace written to a temp folder.
//
// VS Code is code-server behind test/vscode/launcher.mjs, because a desktop VS Code cannot be downloaded
// where only the npm registry and Debian apt are reachable. Where it can, REPO_LLAMA_VSCODE_DOWNLOAD=1 lets
// runTests download and run a desktop VS Code instead (it needs a display, e.g. xvfb-run, on Linux).
// Needs: npm run build, and the tools from scripts/setup-e2e.sh plus chromium (both done by .ci/run).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTests } from "@vscode/test-electron";
import { checkTools } from "./lib/code-server.mjs";
import { compileSuite, loadFixture, REPO } from "./lib/compile.mjs";

const started = Date.now();
const download = process.env.REPO_LLAMA_VSCODE_DOWNLOAD === "1";
// Another extension folder in place of the repository root, to check this harness on its own.
const extensionPath = process.env.REPO_LLAMA_VSCODE_EXTENSION || REPO;

function finish(passed, failed, note = "") {
  console.log(`vscode: ${passed} passed, ${failed} failed${note} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

try {
  const main = join(extensionPath, "dist", "extension.js");
  if (!existsSync(main)) throw new Error(`${main} does not exist: run \`npm run build\` first`);
  if (!download) checkTools();
} catch (error) {
  console.error(`test:vscode: ${error.message}`);
  finish(0, 1, " (not started)");
}

const suiteDir = await compileSuite();
const resultsFile = join(suiteDir, "results.json");
const scratch = mkdtempSync(join(tmpdir(), "repo-llama-test-vscode-"));
const workspace = join(scratch, "workspace");
const expected = loadFixture().writeFixture(workspace);
console.log(`test:vscode: fixture workspace ${workspace}: ${expected.files} files to index, ${expected.bytes} bytes`);

let runError;
try {
  await runTests({
    vscodeExecutablePath: download ? undefined : join(REPO, "test", "vscode", "launcher.mjs"),
    extensionDevelopmentPath: extensionPath,
    extensionTestsPath: join(suiteDir, "index.js"),
    launchArgs: [workspace, `--user-data-dir=${join(scratch, "user-data")}`, `--extensions-dir=${join(scratch, "extensions")}`],
  });
} catch (error) {
  runError = error;
}
rmSync(scratch, { recursive: true, force: true });

if (!existsSync(resultsFile)) {
  console.error(`test:vscode: the suite reported no results${runError ? `: ${runError.message}` : ""}`);
  finish(0, 1, " (suite did not run)");
}
const { passes, failures } = JSON.parse(readFileSync(resultsFile, "utf8"));
if (runError && failures === 0) {
  console.error(`test:vscode: the tests passed but VS Code failed: ${runError.message}`);
  finish(passes, 1, " (VS Code exit)");
}
finish(passes, failures);
