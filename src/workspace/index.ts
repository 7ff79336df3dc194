// The workspace indexer: walk (ignore rules, skips) → order (stable first) → format → segments.
import * as path from "node:path";
import { formatFile, formatHead, formatTail } from "./format";
import { orderStableFirst } from "./order";
import { buildSegments } from "./segments";
import type { IndexedFile, IndexOptions, IndexResult } from "./types";
import { walkWorkspace } from "./walk";

export { formatFile, formatHead, formatQuestion, formatTail, SYSTEM_PROMPT } from "./format";
export { buildSegments, estimateTokens, sha256Hex } from "./segments";
export { IndexCancelled } from "./walk";

/**
 * VS Code's default files.exclude and search.exclude, so that the CLI indexes what a fresh VS Code window
 * would (the extension passes the user's actual settings instead).
 */
export const vscodeDefaultExcludes: readonly string[] = [
  "**/.git",
  "**/.svn",
  "**/.hg",
  "**/CVS",
  "**/.DS_Store",
  "**/Thumbs.db",
  "**/node_modules",
  "**/bower_components",
  "**/*.code-search",
];

/** Defaults of the repoLlama.index.* settings (package.json is the source; these mirror it for the CLI). */
export const defaultIndexOptions: IndexOptions = {
  maxFileKB: 512,
  include: [],
  exclude: [...vscodeDefaultExcludes],
};

/**
 * Indexes the folder `root`. Rejects with IndexCancelled when options.isCancelled turns true, and with an
 * Error saying what to do when `root` is not a readable folder; unreadable files inside are counted, not thrown.
 */
export async function indexWorkspace(root: string, options: IndexOptions): Promise<IndexResult> {
  const started = performance.now();
  const absoluteRoot = path.resolve(root);
  const walked = await walkWorkspace(absoluteRoot, options);
  const ordered = orderStableFirst(walked.files);
  const name = options.name ?? path.basename(absoluteRoot);
  const segments = buildSegments([
    { id: "head", text: formatHead(name) },
    ...ordered.map((file) => ({ id: file.path, text: formatFile(file.path, file.text) })),
    { id: "tail", text: formatTail(ordered.length) },
  ]);
  const files: IndexedFile[] = ordered.map(({ path: filePath, bytes, mtimeMs }) => ({ path: filePath, bytes, mtimeMs }));
  return {
    root: absoluteRoot,
    files,
    segments,
    stats: {
      files: files.length,
      bytes: files.reduce((sum, file) => sum + file.bytes, 0),
      estimatedTokens: segments.reduce((sum, segment) => sum + segment.estimatedTokens, 0),
      skipped: walked.skipped,
      ms: Math.round(performance.now() - started),
    },
  };
}
