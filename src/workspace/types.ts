// The indexer's public shapes: what the extension, the CLI and the sidecar read from it.

/** Why a file was left out of the context. Counts per reason are shown to the user. */
export type SkipReason =
  | "ignored" // .gitignore, .git/info/exclude, .repollamaignore, files.exclude, search.exclude, index.exclude
  | "binary"
  | "tooLarge"
  | "lockFile"
  | "minified"
  | "secret"
  | "unreadable"
  | "symlinkLoop"
  | "notIncluded"; // outside index.include when that setting is non-empty

export interface IndexOptions {
  /** Files over this many KiB are skipped (repoLlama.index.maxFileKB). */
  maxFileKB: number;
  /** Glob patterns; when non-empty only matching files are indexed (repoLlama.index.include). */
  include: string[];
  /** Extra glob patterns to skip (repoLlama.index.exclude, plus files.exclude / search.exclude inside VS Code). */
  exclude: string[];
  /** Name shown in the prompt's <repository name="…">; defaults to the folder name. */
  name?: string;
  /** Checked between files; when it returns true the walk stops with an IndexCancelled error. */
  isCancelled?: () => boolean;
}

export interface IndexedFile {
  /** Workspace-relative path with forward slashes. */
  path: string;
  bytes: number;
  mtimeMs: number;
}

/**
 * One unit of the prompt. Segment 0 is the prompt head (system turn and the opening <repository> tag),
 * then one segment per file in stable-first order, then the closing tail.
 * Invariant: chainHash(i) = sha256(chainHash(i-1) + hash(i)), so equal chain hashes mean equal prompt
 * prefixes up to and including that segment.
 */
export interface Segment {
  id: string; // "head", the file path, or "tail"
  text: string;
  hash: string; // sha256 of text, hex
  chainHash: string; // hex
  /** Cheap estimate of the segment's Llama-3 tokens (see estimateTokens in segments.ts). */
  estimatedTokens: number;
}

export interface IndexStats {
  files: number;
  bytes: number;
  estimatedTokens: number;
  /** Entries left out, by reason. A folder left out whole (ignored, or a symlink loop) counts once. */
  skipped: Partial<Record<SkipReason, number>>;
  ms: number;
}

export interface IndexResult {
  root: string;
  files: IndexedFile[];
  segments: Segment[];
  stats: IndexStats;
}
