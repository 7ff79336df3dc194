// The workspace that the VS Code and e2e layers open: a few source files, a .gitignore, a binary file and
// a lock file. Each entry says what the indexer must do with it, so the expected index summary is computed
// from what was written rather than typed in by hand.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { SkipReason } from "../../../src/workspace/types";

interface FixtureFile {
  path: string;
  content: string | Buffer;
  /** "indexed", or the reason the indexer must give for leaving it out. */
  expect: "indexed" | SkipReason;
}

// A real PNG header followed by NUL-laden image data: binary by extension and by content.
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
  Buffer.from("IHDR"),
  Buffer.alloc(64, 0),
]);

export const fixtureFiles: readonly FixtureFile[] = [
  { path: "README.md", content: "# Fixture shop\n\nA tiny service used by the Repo Llama tests.\n", expect: "indexed" },
  { path: ".gitignore", content: "*.log\n", expect: "indexed" },
  {
    path: "src/cart.ts",
    content: [
      'import { formatPrice } from "./price";',
      "",
      "export interface Item { name: string; cents: number; quantity: number }",
      "",
      "export function total(items: Item[]): string {",
      "  return formatPrice(items.reduce((sum, item) => sum + item.cents * item.quantity, 0));",
      "}",
      "",
    ].join("\n"),
    expect: "indexed",
  },
  {
    path: "src/price.ts",
    content: "export function formatPrice(cents: number): string {\n  return `$${(cents / 100).toFixed(2)}`;\n}\n",
    expect: "indexed",
  },
  { path: "docs/notes.txt", content: "Prices are stored in cents to avoid rounding errors.\n", expect: "indexed" },
  { path: "server.log", content: "started on port 8080\n", expect: "ignored" },
  { path: "assets/logo.png", content: png, expect: "binary" },
  {
    path: "package-lock.json",
    content: JSON.stringify({ name: "fixture-shop", lockfileVersion: 3, requires: true, packages: {} }, null, 2) + "\n",
    expect: "lockFile",
  },
];

export interface ExpectedSummary {
  files: number;
  bytes: number;
  skipped: Partial<Record<SkipReason, number>>;
}

export function writeFixture(root: string): ExpectedSummary {
  for (const file of fixtureFiles) {
    const target = join(root, file.path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content);
  }
  return expectedSummary();
}

export function expectedSummary(): ExpectedSummary {
  const indexed = fixtureFiles.filter((f) => f.expect === "indexed");
  const skipped: Partial<Record<SkipReason, number>> = {};
  for (const file of fixtureFiles) {
    if (file.expect !== "indexed") skipped[file.expect] = (skipped[file.expect] ?? 0) + 1;
  }
  return {
    files: indexed.length,
    bytes: indexed.reduce((sum, f) => sum + Buffer.byteLength(f.content), 0),
    skipped,
  };
}
