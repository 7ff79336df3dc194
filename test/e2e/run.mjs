// npm run test:e2e — the packaged extension in the real VS Code UI. Packages the .vsix (npm run package),
// installs it into a fresh code-server, opens a fixture workspace in headless chromium and checks, as a user
// would see it: the Repo Llama view shows the workspace's real index summary and the no-model message, and
// "Repo Llama: Explain Repository" from the command palette answers with the no-model message. Then, with
// a scripted fixture model configured (written at test time; its greedy answer is longChatScript), a
// question typed into the chat streams the answer through the real sidecar and engine; the HTML in it shows
// as text; the citation opens the file at its line; Stop ends an answer in the middle; an edited file is
// re-prefilled from its segment on in the background and the next answer needs no prefill; Explain
// Repository opens a markdown document with the overview. Screenshots go to test-results/. Needs: npm run build, scripts/setup-e2e.sh and chromium (.ci/run does all).
// Env: REPO_LLAMA_E2E_TIMEOUT_S (default 90) bounds each check.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { checkTools, installExtension, launchChromium, makeProfile, startCodeServer, withTimeout } from "../vscode/lib/code-server.mjs";
import { REPO } from "../vscode/lib/compile.mjs";

const EXTENSION_ID = "repo-llama.repo-llama";
const RESULTS = join(REPO, "test-results");
const CHECK_TIMEOUT_MS = Number(process.env.REPO_LLAMA_E2E_TIMEOUT_S || 90) * 1000;
// Waits inside a check end before the check's own limit, so that a failure can say what was shown instead.
const WAIT_MS = CHECK_TIMEOUT_MS * 0.8;
const started = Date.now();
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (message) => console.log(`[${seconds().padStart(5)} s] ${message}`);

let passed = 0;
let failed = 0;
let page;
function finish() {
  console.log(`e2e: ${passed} passed, ${failed} failed (${seconds()} s)`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

/** One named check with its own time limit; a failure is reported with a screenshot and does not stop the run. */
async function check(name, body) {
  try {
    await withTimeout(body(), CHECK_TIMEOUT_MS, name);
    passed++;
    log(`ok    ${name}`);
    return true;
  } catch (error) {
    failed++;
    log(`FAIL  ${name}\n        ${String(error.message ?? error).split("\n").join("\n        ")}`);
    if (page) await screenshot(`fail-${failed}`).catch(() => {});
    return false;
  }
}

async function screenshot(name) {
  const path = join(RESULTS, `e2e-${name}.png`);
  await page.screenshot({ path });
  log(`screenshot ${path}`);
}

mkdirSync(RESULTS, { recursive: true });
// Screenshots of an earlier run would be mistaken for this one's.
for (const file of readdirSync(RESULTS)) if (file.startsWith("e2e-")) rmSync(join(RESULTS, file));
try {
  checkTools();
} catch (error) {
  console.error(`test:e2e: ${error.message}`);
  failed++;
  finish();
}

// The package under test is the one a user installs.
const { name, version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
const vsix = join(REPO, `${name}-linux-x64-${version}.vsix`);
log("npm run package");
const packaging = spawnSync("npm", ["run", "--silent", "package"], { cwd: REPO, encoding: "utf8" });
if (packaging.status !== 0) {
  console.error(`test:e2e: npm run package failed:\n${packaging.stdout}${packaging.stderr}`);
  failed++;
  finish();
}
log(`packaged ${vsix}`);

// The fixture workspace and the texts the view shows, from the same modules the product and the
// integration suite use, so the expectations follow the code rather than a copy of it.
const helpersDir = join(REPO, "out", "test", "e2e");
await esbuild.build({
  entryPoints: {
    fixture: join(REPO, "test", "vscode", "suite", "fixture.ts"),
    messages: join(REPO, "src", "chat", "messages.ts"),
    summary: join(REPO, "src", "chat", "summary.ts"),
    chatScript: join(REPO, "test", "vscode", "suite", "chatScript.ts"),
  },
  outdir: helpersDir,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  logLevel: "warning",
});
const load = createRequire(import.meta.url);
const { writeFixture } = load(join(helpersDir, "fixture.js"));
const { NO_MODEL_MESSAGE } = load(join(helpersDir, "messages.js"));
const { formatBytes, formatSkipped } = load(join(helpersDir, "summary.js"));
const { CITED_LINE, CITED_PATH, longChatScript } = load(join(helpersDir, "chatScript.js"));

const scratch = mkdtempSync(join(tmpdir(), "repo-llama-e2e-"));
const workspace = join(scratch, "workspace");
const expected = writeFixture(workspace);
const profile = makeProfile(join(scratch, "profile"));
// Long enough (~300 tokens, several seconds on two cores) that Stop lands in the middle of an answer.
const SCRIPT_WORDS = 250;
const fixtures = load(join(REPO, "dist", "fixtures.js"));
const script = longChatScript(fixtures.tokenBytesIndex().keys(), SCRIPT_WORDS);
const [scripted] = fixtures.writeFixtures(join(scratch, "models"), [fixtures.scriptedFixture(script)]);
log(`scripted model ${scripted.path} (${scripted.bytes} bytes, ${scripted.seconds.toFixed(1)} s)`);
let server;
let browser;
try {
  await runChecks();
} catch (error) {
  // Starting code-server or the browser failed.
  failed++;
  log(`stopped: ${error.message}`);
} finally {
  await browser?.close().catch(() => {});
  await server?.stop();
  if (failed > 0 && server) {
    writeFileSync(join(RESULTS, "e2e-code-server.log"), server.output());
    log(`code-server output: ${join(RESULTS, "e2e-code-server.log")}`);
  }
  rmSync(scratch, { recursive: true, force: true });
}
finish();

async function runChecks() {
  const installed = await check(`code-server installs ${name}-linux-x64-${version}.vsix`, async () => {
    installExtension(profile, vsix);
  });
  if (!installed) return;

  server = await startCodeServer(profile, workspace);
  log(`code-server on ${server.origin}, workspace ${workspace}`);
  browser = await launchChromium(join(scratch, "chromium"));
  page = browser.pages()[0] ?? (await browser.newPage());

  // The view container's title is the activity bar item's label ("Repo Llama", maybe with a keybinding).
  const activityItem = page.locator('.activitybar [aria-label^="Repo Llama"]').first();
  const workbenchReady = await check("the workbench starts and shows the Repo Llama activity bar item", async () => {
    await page.goto(`${server.origin}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator(".monaco-workbench").waitFor({ timeout: CHECK_TIMEOUT_MS });
    await activityItem.waitFor({ timeout: CHECK_TIMEOUT_MS });
    await screenshot("1-workbench");
  });
  // Nothing else can be seen without a workbench.
  if (!workbenchReady) return;

  // Our webview: VS Code's host iframe for this extension, then the frame holding the view's own page.
  const view = page.frameLocator(`iframe.webview[src*="extensionId=${EXTENSION_ID}"]`).frameLocator("#active-frame");
  const totals = `${expected.files} files · ${formatBytes(expected.bytes)}`;
  await check(`the view shows the index summary "${totals} …" and "${formatSkipped(expected.skipped)}"`, async () => {
    await activityItem.click();
    // Away from the activity bar, so that its hover label does not cover the view in the screenshots.
    await page.mouse.move(900, 450);
    const summary = view.locator("#index-summary");
    const shown = await summary.filter({ hasText: totals }).waitFor({ timeout: WAIT_MS }).then(() => true, () => false);
    const text = await textOf(summary);
    log(`#index-summary: "${text}"`);
    if (!shown || !text.startsWith(totals)) throw new Error(`#index-summary shows "${text}", expected "${totals} …"`);
    if (!text.includes(formatSkipped(expected.skipped))) throw new Error(`#index-summary does not list the skips: "${text}"`);
  });

  await check("the view shows the no-model message with a Select Model button", async () => {
    const noModel = view.locator("#no-model");
    const shown = await noModel.filter({ hasText: NO_MODEL_MESSAGE }).waitFor({ state: "visible", timeout: WAIT_MS }).then(() => true, () => false);
    if (!shown) throw new Error(`#no-model is not visible with the no-model message; it shows "${await textOf(noModel)}"`);
    await view.locator("#no-model #select-model").waitFor({ state: "visible", timeout: 5000 });
    await screenshot("2-view");
  });

  await check('"Repo Llama: Explain Repository" from the command palette shows the no-model message', async () => {
    await runCommand("Repo Llama: Explain Repository");
    const toast = page.locator(".notifications-toasts .notification-toast", { hasText: NO_MODEL_MESSAGE });
    if (!(await toast.waitFor({ timeout: 10_000 }).then(() => true, () => false))) {
      // A toast can be hidden by another notification; the notification center lists every message.
      await runCommand("Notifications: Show Notifications");
      await page.locator(".notifications-center .notification-list-item", { hasText: NO_MODEL_MESSAGE }).waitFor({ timeout: 15_000 });
      log("no-model message found in the notification center");
    }
    // Let the toast finish sliding in before the screenshot.
    await page.waitForTimeout(500);
    await screenshot("3-explain");
  });

  await checkChat(view);
}

async function checkChat(view) {
  const input = view.locator("#chat-input");
  const modelSet = await check("with repoLlama.modelPath set to the scripted model, the chat input is enabled", async () => {
    // A workspace setting, as a user would write it; VS Code picks up the new file while running.
    mkdirSync(join(workspace, ".vscode"), { recursive: true });
    writeFileSync(join(workspace, ".vscode", "settings.json"), JSON.stringify({ "repoLlama.modelPath": scripted.path }, null, 2));
    await page.keyboard.press("Escape");
    await view.locator("#chat-input:not([disabled])").waitFor({ timeout: WAIT_MS });
  });
  if (!modelSet) return;

  const entry = view.locator("article.entry").last();
  const answerText = entry.locator(".answer-text");
  const answered = await check("a question typed into the chat streams the scripted answer (Shift+Enter: newline, Enter: send)", async () => {
    await input.click();
    await input.fill("Where is");
    await input.press("Shift+Enter");
    const draft = await input.inputValue();
    if (draft !== "Where is\n") throw new Error(`Shift+Enter left ${JSON.stringify(draft)} in the input`);
    if ((await view.locator("article.entry").count()) !== 0) throw new Error("Shift+Enter sent the question");
    await input.fill("Where is the total computed?");
    await input.press("Enter");
    await entry.locator(".question", { hasText: "Where is the total computed?" }).waitFor({ timeout: 10_000 });
    // Streamed: part of the answer is on the page before all of it is.
    await answerText.filter({ hasText: "The total is computed" }).waitFor({ timeout: WAIT_MS });
    const partial = await textOf(answerText);
    await view.locator('article.entry[data-status="done"]').last().waitFor({ timeout: WAIT_MS });
    const full = await textOf(answerText);
    log(`answer: ${full.length} characters shown, ${partial.length} while streaming`);
    const lastWord = script.trim().split(/\s+/).pop();
    if (!(partial.length < full.length)) throw new Error(`the answer did not stream: ${partial.length} characters first, ${full.length} at the end`);
    if (!full.endsWith(lastWord)) throw new Error(`the answer does not end with the script's last word "${lastWord}": "…${full.slice(-80)}"`);
    const context = view.locator("#context-summary");
    await context.filter({ hasText: /^Context: [\d,]+ tokens \(/ }).waitFor({ timeout: 10_000 }).catch(async () => {
      throw new Error(`the context indicator shows "${await textOf(context)}"`);
    });
    log(`#context-summary: "${await textOf(context)}"`);
    const status = await textOf(entry.locator(".entry-status"));
    if (!/^[\d,]+ tokens at \d+ tokens\/s · first token after [\d,]+ ms · [\d,]+ context tokens reused/.test(status)) {
      throw new Error(`the answer's figures read "${status}"`);
    }
    log(`.entry-status: "${status}"`);
    await screenshot("4-answer");
  });
  if (!answered) return;

  await check("markdown is rendered and the model's <img onerror> shows as text, with no img element", async () => {
    const imgText = "<img src=x onerror=alert(1)>";
    const shown = await textOf(answerText);
    if (!shown.includes(imgText)) throw new Error(`the answer does not show "${imgText}" as text: "${shown.slice(0, 200)}…"`);
    const images = await view.locator("#answer img").count();
    if (images !== 0) throw new Error(`the answer area holds ${images} img element(s)`);
    await answerText.locator("h2", { hasText: "Notes" }).waitFor({ timeout: 5000 });
    await answerText.locator("strong", { hasText: "formatPrice" }).waitFor({ timeout: 5000 });
    await answerText.locator("code", { hasText: "npm test" }).waitFor({ timeout: 5000 });
  });

  await check(`the citation ${CITED_PATH}:${CITED_LINE} opens the file at line ${CITED_LINE}`, async () => {
    const link = answerText.locator("a.citation", { hasText: `${CITED_PATH}:${CITED_LINE}` });
    await link.click();
    const fileName = CITED_PATH.split("/").pop();
    await page.locator(".tabs-container .tab.active", { hasText: fileName }).waitFor({ timeout: WAIT_MS });
    const cursor = page.locator("#status\\.editor\\.selection");
    await cursor.filter({ hasText: `Ln ${CITED_LINE},` }).waitFor({ timeout: WAIT_MS }).catch(async () => {
      throw new Error(`the cursor is not on line ${CITED_LINE}: the status bar shows "${await textOf(cursor)}"`);
    });
    await screenshot("5-citation");
  });

  await check("Stop ends an answer in the middle and the engine sends no more text", async () => {
    await input.click();
    await input.fill("Explain it again.");
    await input.press("Enter");
    const streaming = view.locator('article.entry[data-status="streaming"] .answer-text', { hasText: "Notes" });
    await streaming.waitFor({ timeout: WAIT_MS });
    await view.locator("#stop").click();
    await view.locator('article.entry[data-status="stopped"]').last().waitFor({ timeout: 10_000 });
    const stopped = await textOf(answerText);
    await page.waitForTimeout(1500);
    const later = await textOf(answerText);
    log(`stopped after ${stopped.length} characters`);
    if (later !== stopped) throw new Error(`text kept arriving after Stop: ${stopped.length} → ${later.length} characters`);
    if (stopped.endsWith(script.trim().split(/\s+/).pop())) throw new Error("the whole answer arrived: Stop came too late to tell");
    if (!(await view.locator("#stop").isHidden())) throw new Error("the Stop button is still shown");
    await screenshot("6-stopped");
  });

  await check("editing a file re-prefills only the tail in the background, and the next answer needs no prefill", async () => {
    const summary = view.locator("#context-summary");
    // Earlier steps changed .vscode/settings.json, which the watcher follows too: let that settle first
    // (the indicator unchanged for longer than the watcher's debounce), so that the update seen below is
    // the edit's own.
    let before = await textOf(summary);
    for (let still = 0; still < 3000; still += 250) {
      await page.waitForTimeout(250);
      const now = await textOf(summary);
      if (now !== before) [before, still] = [now, 0];
    }
    const price = join(workspace, "src", "price.ts");
    writeFileSync(price, `${readFileSync(price, "utf8")}// Prices are rounded to cents.\n`);
    // No question: the file watcher re-indexes and the context follows by itself.
    // "Context: 266 tokens (166 reused, 100 prefilled from .vscode/settings.json on, after src/price.ts changed)":
    // files are ordered stable-first, so the prefill starts where the edited file was, and the indicator names it.
    const updated = /^Context: ([\d,]+) tokens \(([\d,]+) reused, ([\d,]+) prefilled from (\S+) on, after (.+) changed\)/;
    const changed = async () => {
      const text = await textOf(summary);
      return text !== before && updated.test(text);
    };
    for (const until = Date.now() + WAIT_MS; !(await changed()); await page.waitForTimeout(250)) {
      if (Date.now() > until) throw new Error(`the context indicator shows "${await textOf(summary)}" after the edit`);
    }
    const shown = await textOf(summary);
    log(`#context-summary after the edit: "${shown}"`);
    const [, total, reused, prefilled, from, changedNames] = shown.match(updated).map((x) => x.replaceAll(",", ""));
    if (Number(reused) <= 0 || Number(prefilled) <= 0 || Number(reused) + Number(prefilled) !== Number(total)) {
      throw new Error(`the update did not keep a prefix: ${shown}`);
    }
    if (from === "head") throw new Error(`the whole context was prefilled again: ${shown}`);
    const namesEdited = changedNames === "src/price.ts" || (changedNames === "it" && from === "src/price.ts");
    if (!namesEdited) throw new Error(`the indicator does not name the edited file src/price.ts as the one that changed: ${shown}`);
    await screenshot("6b-edited");

    await input.click();
    await input.fill("What changed?");
    await input.press("Enter");
    await view.locator('article.entry[data-status="done"] .question', { hasText: "What changed?" }).waitFor({ timeout: WAIT_MS });
    const fromMemory = `Context: ${Number(total).toLocaleString("en-US")} tokens (all from memory)`;
    await summary.filter({ hasText: fromMemory }).waitFor({ timeout: 10_000 }).catch(async () => {
      throw new Error(`after the answer the context indicator shows "${await textOf(summary)}", expected "${fromMemory} …"`);
    });
    const status = await textOf(view.locator("article.entry").last().locator(".entry-status"));
    if (!status.includes(`${Number(total).toLocaleString("en-US")} context tokens reused`)) throw new Error(`the answer's figures read "${status}"`);
  });

  await check('"Repo Llama: Explain Repository" with the model opens a markdown document with the overview', async () => {
    await runCommand("Repo Llama: Explain Repository");
    const editor = page.locator(".editor-instance .view-lines").first();
    await page.locator(".tabs-container .tab.active", { hasText: "Untitled" }).waitFor({ timeout: WAIT_MS });
    await editor.filter({ hasText: "The total is computed" }).waitFor({ timeout: WAIT_MS });
    await screenshot("7-explain-model");
  });

  await check("after a window reload the view shows the conversation again (kept per workspace)", async () => {
    await page.reload();
    await page.locator(".monaco-workbench").waitFor({ timeout: WAIT_MS });
    const entries = view.locator("article.entry .question");
    const restored = await entries.nth(2).waitFor({ timeout: 15_000 }).then(() => true, () => false);
    if (!restored) {
      // The side bar may come back on another view: open ours.
      await page.locator('.activitybar [aria-label^="Repo Llama"]').first().click();
      await entries.nth(2).waitFor({ timeout: WAIT_MS });
    }
    const questions = await entries.allInnerTexts();
    const expected = ["Where is the total computed?", "Explain it again.", "What changed?"];
    if (JSON.stringify(questions) !== JSON.stringify(expected)) throw new Error(`the restored questions are ${JSON.stringify(questions)}`);
    // The page first shows the entries from its own saved state, which can lag behind the last update;
    // the extension's history, replayed once the view is resolved, is what must hold.
    const expectedStatuses = JSON.stringify(["done", "stopped", "done"]);
    let statuses = "";
    for (const until = Date.now() + 15_000; Date.now() < until; await page.waitForTimeout(250)) {
      statuses = JSON.stringify(await view.locator("article.entry").evaluateAll((articles) => articles.map((a) => a.dataset.status)));
      if (statuses === expectedStatuses) break;
    }
    if (statuses !== expectedStatuses) throw new Error(`restored statuses ${statuses}`);
    await view.locator("article.entry a.citation", { hasText: `${CITED_PATH}:${CITED_LINE}` }).first().waitFor({ timeout: 5000 });
    await screenshot("8-reloaded");
  });

  await check("a long prefill shows tokens, speed and ETA in a notification and in the view; Cancel in the view stops it", async () => {
    // About 9,000 tokens: several seconds of prefill with the scripted model on two cores.
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i}: the value ${i * 7} is kept here\n`).join("");
    writeFileSync(join(workspace, "src", "big.txt"), lines);
    await view.locator("#reindex").click();
    const files = expected.files + 2; // src/big.txt and .vscode/settings.json
    await view.locator("#index-totals", { hasText: `${files} files` }).waitFor({ timeout: WAIT_MS });
    await input.click();
    await input.fill("What does big.txt say?");
    await input.press("Enter");
    const progressText = view.locator("#prefill-text");
    const pattern = /^Preparing the context: [\d,]+ of [\d,]+ tokens · [\d,]+ tokens\/s · about .+ left$/;
    await progressText.filter({ hasText: pattern }).waitFor({ timeout: WAIT_MS }).catch(async () => {
      throw new Error(`the view's prefill progress shows "${await textOf(progressText)}"`);
    });
    log(`#prefill-text: "${await textOf(progressText)}"`);
    await page.locator(".notifications-toasts .notification-toast", { hasText: "preparing the repository context" }).waitFor({ timeout: 10_000 });
    await screenshot("9-prefill");
    await view.locator("#prefill-cancel").click();
    await view.locator("#prefill").waitFor({ state: "hidden", timeout: 10_000 });
    const last = view.locator("article.entry").last();
    await last.locator(".question", { hasText: "What does big.txt say?" }).waitFor({ timeout: 5000 });
    const status = await last.getAttribute("data-status");
    if (status !== "stopped") throw new Error(`the cancelled question's entry is "${status}", expected "stopped"`);
  });
}

/** An element's text with white space collapsed, or a note that it is not there. */
async function textOf(locator) {
  const text = await locator.innerText({ timeout: 5000 }).catch(() => undefined);
  return text === undefined ? "(not found)" : text.replace(/\s+/g, " ").trim();
}

/** F1, type the command's full title, wait for it in the list and run it. */
async function runCommand(title) {
  await page.keyboard.press("Escape");
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input[type='text']").first();
  await input.waitFor({ timeout: 15_000 });
  await input.fill(`>${title}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor({ timeout: 15_000 });
  await page.keyboard.press("Enter");
}
