// Runs the real VS Code workbench as code-server (Node 24) and drives it with Debian's chromium through
// playwright-core. Shared by the integration layer (test/vscode) and the e2e layer (test/e2e).
// The tools are installed by scripts/setup-e2e.sh into $REPO_LLAMA_TOOLS (default ~/.cache/repo-llama-tools).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const TOOLS = process.env.REPO_LLAMA_TOOLS || join(homedir(), ".cache", "repo-llama-tools");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const NODE24_BIN_DIR = join(TOOLS, "node24", "bin");
const NODE24 = join(NODE24_BIN_DIR, "node");
const CODE_SERVER_ENTRY = join(TOOLS, "code-server", "node_modules", "code-server", "out", "node", "entry.js");

/** Throws a message that says how to install whatever is missing. */
export function checkTools() {
  const missing = [];
  if (!existsSync(NODE24)) missing.push(`Node 24 (${NODE24})`);
  if (!existsSync(CODE_SERVER_ENTRY)) missing.push(`code-server (${CODE_SERVER_ENTRY})`);
  if (missing.length) {
    throw new Error(`missing ${missing.join(" and ")}: run \`bash scripts/setup-e2e.sh\` (installs into REPO_LLAMA_TOOLS=${TOOLS})`);
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: run \`apt-get install -y chromium\` or set CHROMIUM`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Rejects with `what` in the message when `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A profile for one run: user data, extensions and code-server's XDG folders under `dir` (unless given), so that
 * nothing is read from or written to the home folder (code-server writes ~/.config/code-server/config.yaml
 * and ~/.local/share/code-server otherwise).
 */
export function makeProfile(dir, { userDataDir = join(dir, "user-data"), extensionsDir = join(dir, "extensions") } = {}) {
  const profile = {
    dir,
    userDataDir,
    extensionsDir,
    configFile: join(dir, "code-server.yaml"),
    env: {
      ...process.env,
      // First in PATH so that anything code-server starts with `node` gets Node 24 too.
      PATH: `${NODE24_BIN_DIR}:${process.env.PATH}`,
      XDG_CONFIG_HOME: join(dir, "xdg-config"),
      XDG_DATA_HOME: join(dir, "xdg-data"),
      XDG_CACHE_HOME: join(dir, "xdg-cache"),
    },
  };
  mkdirSync(join(profile.userDataDir, "User"), { recursive: true });
  mkdirSync(profile.extensionsDir, { recursive: true });
  writeFileSync(profile.configFile, "auth: none\ncert: false\n");
  // A quiet workbench: no welcome page, no update or gallery checks, no trust prompt, and the AI chat
  // side bar of recent VS Code versions kept closed so that it cannot be mistaken for our view.
  const settings = {
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "extensions.ignoreRecommendations": true,
    "security.workspace.trust.enabled": false,
    "update.mode": "none",
    "chat.disableAIFeatures": true,
    "workbench.secondarySideBar.defaultVisibility": "hidden",
  };
  writeFileSync(join(profile.userDataDir, "User", "settings.json"), JSON.stringify(settings, null, 2));
  return profile;
}

/** `code-server --install-extension <vsix>` into the profile; throws with code-server's output on failure. */
export function installExtension(profile, vsix) {
  const r = spawnSync(
    NODE24,
    [CODE_SERVER_ENTRY, "--user-data-dir", profile.userDataDir, "--extensions-dir", profile.extensionsDir, "--install-extension", vsix],
    { env: profile.env, encoding: "utf8", timeout: 120_000 },
  );
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0 || !/successfully installed/i.test(output)) {
    throw new Error(`code-server --install-extension ${vsix} failed (status ${r.status ?? r.signal}):\n${output}`);
  }
  return output.trim();
}

/**
 * Starts code-server for `folder` on a free port, in its own process group so that stop() also ends the
 * extension hosts and helpers it spawned. `smokeTestDriver` turns on VS Code's automation hooks, which
 * the extension test mode needs (the `payload` URL parameter, codeAutomationLog/Exit); it also
 * suppresses notification toasts, so the e2e layer runs without it.
 */
export async function startCodeServer(profile, folder, { smokeTestDriver = false } = {}) {
  const port = await freePort();
  const args = [
    CODE_SERVER_ENTRY,
    "--config", profile.configFile,
    "--bind-addr", `127.0.0.1:${port}`,
    "--auth", "none",
    "--user-data-dir", profile.userDataDir,
    "--extensions-dir", profile.extensionsDir,
    "--disable-telemetry",
    "--disable-update-check",
    "--disable-workspace-trust",
    "--ignore-last-opened",
    // Extension hosts outlive a closed browser for this long (3 h by default).
    "--reconnection-grace-time", "5",
  ];
  if (smokeTestDriver) args.push("--vscode-option", "enable-smoke-test-driver");
  args.push(folder);
  const child = spawn(NODE24, args, { env: profile.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let exited = false;
  const exitedPromise = new Promise((resolve) => child.on("exit", () => ((exited = true), resolve())));
  const killGroup = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // The group is already gone.
    }
  };
  // Last resort when the test process itself dies: never leave a server and its extension hosts behind.
  const onExit = () => killGroup("SIGKILL");
  process.on("exit", onExit);

  const server = {
    port,
    origin: `http://127.0.0.1:${port}`,
    authority: `127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      process.off("exit", onExit);
      killGroup("SIGTERM");
      await Promise.race([exitedPromise, delay(5000)]);
      // Helpers of the extension host may ignore SIGTERM; the group goes either way.
      killGroup("SIGKILL");
    },
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`code-server exited during start-up:\n${output}`);
    try {
      if ((await fetch(`${server.origin}/healthz`)).ok) return server;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`code-server did not answer /healthz within 30 s:\n${output}`);
    }
    await delay(150);
  }
}

/** Headless chromium with a fresh profile in `profileDir` (playwright refuses --user-data-dir in args). */
export function launchChromium(profileDir) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
