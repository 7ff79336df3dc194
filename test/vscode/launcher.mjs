#!/usr/bin/env node
// The "VS Code executable" that test/vscode/run.mjs gives to @vscode/test-electron's
// runTests({ vscodeExecutablePath }). A desktop VS Code cannot be downloaded where only the npm registry
// and Debian apt are reachable (every VS Code and Electron download comes from other hosts), so this runs
// the same workbench as code-server: it starts code-server with VS Code's automation hooks on, opens the
// workbench in headless chromium with the extension test `payload` (the extension host only starts for a
// connected browser), forwards the extension host's console (mocha's report) to stdout and exits with the
// test run's exit code, as VS Code itself does in extension test mode.
//
// Accepts the arguments runTests passes: --extensionDevelopmentPath=… (one or more), --extensionTestsPath=…,
// --user-data-dir=…, --extensions-dir=…, a folder to open; other desktop flags (--no-sandbox,
// --disable-updates, …) do not apply to code-server and are ignored.
// Env: REPO_LLAMA_VSCODE_TIMEOUT_S (default 180) bounds the whole test run.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { format } from "node:util";
import { checkTools, launchChromium, makeProfile, startCodeServer, withTimeout } from "./lib/code-server.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const timeoutMs = Number(process.env.REPO_LLAMA_VSCODE_TIMEOUT_S || 180) * 1000;

const argv = process.argv.slice(2);
const values = (name) => argv.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
const developmentPaths = values("extensionDevelopmentPath").map((p) => resolve(p));
const testsPath = values("extensionTestsPath").map((p) => resolve(p))[0];
if (!testsPath || developmentPaths.length === 0) {
  console.error("launcher: needs --extensionDevelopmentPath=DIR and --extensionTestsPath=FILE (the arguments runTests passes)");
  process.exit(2);
}
const folderArg = argv.find((a) => !a.startsWith("-"));

try {
  checkTools();
} catch (error) {
  console.error(`launcher: ${error.message}`);
  process.exit(2);
}

const scratch = mkdtempSync(join(tmpdir(), "repo-llama-vscode-"));
const profile = makeProfile(scratch, {
  userDataDir: values("user-data-dir")[0] ? resolve(values("user-data-dir")[0]) : undefined,
  extensionsDir: values("extensions-dir")[0] ? resolve(values("extensions-dir")[0]) : undefined,
});
const folder = folderArg ? resolve(folderArg) : join(scratch, "empty-workspace");
mkdirSync(folder, { recursive: true });

// The same console also carries the workbench's own start-up messages. They are kept back (and shown when the
// suite never started) until it announces itself with a line starting with this prefix (test/vscode/suite/index.ts).
const SUITE_START_PREFIX = "vscode-suite:";
// Workbench messages that keep coming after that line: failed look-ups of the extension gallery and sign-in
// providers (expected offline) and account policy updates.
const WORKBENCH_NOISE = /ENOTFOUND|authentication provider|^\[AccountPolicyGate\]/;
const workbenchLog = [];
let suiteStarted = false;
const printWorkbenchLog = () => {
  if (!suiteStarted && workbenchLog.length) console.error(`launcher: workbench console:\n${workbenchLog.join("\n")}`);
};

const started = Date.now();
let server;
let browser;
let exitCode = 1;
try {
  server = await startCodeServer(profile, folder, { smokeTestDriver: true });
  // The workbench reads these from the `payload` URL parameter only with the automation hooks on; the
  // paths are on the server side, hence vscode-remote URIs with the server's authority.
  const remote = (path) => `vscode-remote://${server.authority}${path}`;
  const payload = [
    ...developmentPaths.map((p) => ["extensionDevelopmentPath", remote(p)]),
    ["extensionTestsPath", remote(testsPath)],
  ];
  const url = `${server.origin}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;

  browser = await launchChromium(join(scratch, "chromium"));
  const page = browser.pages()[0] ?? (await browser.newPage());
  // The workbench calls these two hooks in automation mode: the extension host's console output, and its
  // exit code once the tests' run() has settled.
  const finished = new Promise((resolveExit) => page.exposeFunction("codeAutomationExit", (code) => resolveExit(code)));
  await page.exposeFunction("codeAutomationLog", (type, args) => {
    const line = format(...(args ?? []));
    if (line.startsWith(SUITE_START_PREFIX)) suiteStarted = true;
    if (suiteStarted && !WORKBENCH_NOISE.test(line)) {
      if (type === "error") console.error(line);
      else console.log(line);
    } else {
      workbenchLog.push(`[${type}] ${line}`);
    }
  });
  await page.goto(url);
  try {
    exitCode = await withTimeout(finished, timeoutMs, "the extension tests did not finish (REPO_LLAMA_VSCODE_TIMEOUT_S raises the limit)");
  } catch (error) {
    const shot = join(REPO, "test-results", "vscode-timeout.png");
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot }).catch(() => {});
    throw new Error(`${error.message}; screenshot: ${shot}`);
  }
  if (exitCode !== 0) printWorkbenchLog();
  console.log(`launcher: extension host exited with code ${exitCode} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  console.error(`launcher: ${error.message}`);
  printWorkbenchLog();
  if (server) console.error(`launcher: code-server output (last 3000 characters):\n${server.output().slice(-3000)}`);
  exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
}
process.exit(exitCode === 0 ? 0 : 1);
