// npm test: every test layer in order (native, unit, engine, VS Code integration, e2e), each with its
// own summary; a failing layer does not hide the others, and the exit code is non-zero if any failed.
import { spawnSync } from "node:child_process";

const layers = [
  ["native", "test:native"],
  ["unit", "test:unit"],
  ["engine", "test:engine"],
  ["vscode", "test:vscode"],
  ["e2e", "test:e2e"],
];
const only = process.argv.slice(2);
const results = [];
for (const [name, script] of layers) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n===== test layer: ${name} (npm run ${script}) =====`);
  const started = Date.now();
  const r = spawnSync("npm", ["run", "--silent", script], { stdio: "inherit" });
  results.push({ name, ok: r.status === 0, seconds: (Date.now() - started) / 1000 });
}
console.log("\n===== summary =====");
for (const r of results) console.log(`${r.ok ? "PASS" : "FAIL"}  ${r.name.padEnd(7)} ${r.seconds.toFixed(1)} s`);
const failed = results.filter((r) => !r.ok).length;
console.log(`layers: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
