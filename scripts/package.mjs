// npm run package — builds repo-llama-linux-x64-<version>.vsix from an existing build (npm run build) and
// checks what went into it: only the allow-listed files of .vscodeignore, never node_modules (the bundles
// in dist/ are self-contained and the addon is built for linux-x64, hence the platform-specific package).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TARGET = "linux-x64";
const { name, version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
const vsixName = `${name}-${TARGET}-${version}.vsix`;

const REQUIRED = ["dist/extension.js", "dist/media/chat.js", "dist/hcattn.node", "README.md", "LICENSE", "package.json"];
// Paths inside the .vsix (vsce puts the extension under extension/, may lower-case the readme and renames
// LICENSE to LICENSE.txt). Mirrors .vscodeignore.
const ALLOWED = [
  /^\[Content_Types\]\.xml$/,
  /^extension\.vsixmanifest$/,
  /^extension\/package\.json$/,
  /^extension\/readme\.md$/i,
  /^extension\/LICENSE(\.txt)?$/,
  /^extension\/dist\/(extension|sidecar|cli)\.js$/,
  /^extension\/dist\/hcattn\.node$/,
  /^extension\/dist\/media\/[^/]+\.(js|css)$/,
  /^extension\/media\/[^/]+\.(css|png|svg)$/,
];

function fail(message) {
  console.error(`package: ${message}`);
  process.exit(1);
}

const missing = REQUIRED.filter((path) => !existsSync(join(REPO, path)));
if (missing.length) fail(`missing ${missing.join(", ")}: run \`npm run build\` first (README.md and LICENSE are committed files)`);

const vsce = join(REPO, "node_modules", ".bin", "vsce");
const args = [
  "package",
  "--target", TARGET,
  "--out", vsixName,
  // Nothing from node_modules: everything the extension runs is bundled into dist/.
  "--no-dependencies",
  // The manifest names no repository; relative README links stay as written.
  "--allow-missing-repository",
  "--no-rewrite-relative-links",
];
const started = Date.now();
const run = spawnSync(vsce, args, { cwd: REPO, encoding: "utf8" });
const vsceOutput = `${run.stdout ?? ""}${run.stderr ?? ""}`;
if (run.status !== 0) fail(`vsce ${args.join(" ")} failed with status ${run.status ?? run.signal}:\n${vsceOutput}${run.error ?? ""}`);
// vsce prints its own file tree; the checked listing below replaces it, but its warnings stay visible.
for (const line of vsceOutput.split("\n")) if (/WARN/.test(line)) console.log(line);

const vsixPath = join(REPO, vsixName);
const entries = listZip(readFileSync(vsixPath));
console.log(`\n${vsixName}: ${entries.length} files, ${formatSize(statSync(vsixPath).size)} packed`);
for (const entry of entries) console.log(`  ${formatSize(entry.size).padStart(10)}  ${entry.name}`);

const problems = [
  ...entries.filter((e) => !ALLOWED.some((re) => re.test(e.name))).map((e) => `not in the allow-list: ${e.name}`),
  ...["extension/dist/extension.js", "extension/dist/hcattn.node", "extension/dist/media/chat.js"]
    .filter((required) => !entries.some((e) => e.name === required))
    .map((required) => `missing from the package: ${required}`),
];
if (problems.length) fail(`${vsixName} is wrong (fix .vscodeignore or the build):\n  ${problems.join("\n  ")}`);
console.log(`package: ${vsixPath} OK (${((Date.now() - started) / 1000).toFixed(1)} s)`);

/** Names and uncompressed sizes from a zip's central directory (a .vsix is a plain zip, no zip64). */
function listZip(zip) {
  const EOCD = 0x06054b50;
  const CENTRAL = 0x02014b50;
  let eocd = -1;
  // The end record is 22 bytes plus a comment of at most 65535 bytes.
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("the .vsix is not a zip file (no end of central directory record)");
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const list = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== CENTRAL) fail(`corrupt central directory at byte ${offset}`);
    const size = zip.readUInt32LE(offset + 24);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    list.push({ name: zip.toString("utf8", offset + 46, offset + 46 + nameLength), size });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return list;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
