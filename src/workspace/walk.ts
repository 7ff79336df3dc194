// Finds the files of a workspace that belong in the prompt and reads them.
//
// The walk is iterative (a stack of folders, no recursion), so depth is unbounded; each folder is listed
// once and each file costs one open, one fstat and one read. File system calls are synchronous, which is the
// fastest way through many small files, and the walk yields to the event loop every few milliseconds so
// that an extension host stays responsive and cancellation is seen.
import { isUtf8 } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { holdsPrivateKey, holdsToken, looksBinary, looksMinified, mayHoldToken, skipReasonByName } from "./fileKinds";
import { GlobSet } from "./glob";
import { IgnoreStack } from "./ignoreRules";
import { compareCodeUnits } from "./order";
import type { IndexOptions, SkipReason } from "./types";

export interface WalkedFile {
  /** Workspace-relative, forward slashes. */
  path: string;
  bytes: number;
  mtimeMs: number;
  /** The content decoded as UTF-8 (a byte-order mark removed). */
  text: string;
}

export interface WalkResult {
  files: WalkedFile[];
  skipped: Partial<Record<SkipReason, number>>;
}

/** Thrown by the walk when IndexOptions.isCancelled returns true. */
export class IndexCancelled extends Error {
  constructor() {
    super("Indexing was cancelled.");
    this.name = "IndexCancelled";
  }
}

const IGNORE_FILES = [".gitignore", ".repollamaignore"] as const;
const YIELD_EVERY_MS = 10;
// Opening a FIFO or a device without O_NONBLOCK can wait forever; with it, fstat then tells what it is.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

interface Folder {
  absolute: string;
  /** Workspace-relative, "" for the root. */
  relative: string;
  /** Real path, to notice a symlink that leads back into a folder already walked. */
  real: string;
  ignores: IgnoreStack;
}

export async function walkWorkspace(root: string, options: IndexOptions): Promise<WalkResult> {
  const absoluteRoot = path.resolve(root);
  const realRoot = openRoot(absoluteRoot);
  const walk = new Walk(options);
  const rootFolder: Folder = { absolute: absoluteRoot, relative: "", real: realRoot, ignores: repositoryRules(absoluteRoot) };
  walk.visited.add(realRoot);
  await walk.run(rootFolder);
  return { files: walk.files, skipped: walk.skipped };
}

function openRoot(absoluteRoot: string): string {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(absoluteRoot);
  } catch (error) {
    throw new Error(`Cannot index ${absoluteRoot}: ${describe(error)}. Open an existing folder.`);
  }
  if (!stats.isDirectory()) throw new Error(`Cannot index ${absoluteRoot}: it is a file, not a folder.`);
  return fs.realpathSync(absoluteRoot);
}

class Walk {
  readonly files: WalkedFile[] = [];
  readonly skipped: Partial<Record<SkipReason, number>> = {};
  readonly visited = new Set<string>();
  private readonly exclude: GlobSet;
  private readonly include: GlobSet;
  private readonly maxBytes: number;
  private lastYield = performance.now();

  constructor(private readonly options: IndexOptions) {
    this.exclude = new GlobSet(options.exclude);
    this.include = new GlobSet(options.include);
    this.maxBytes = options.maxFileKB * 1024;
  }

  /**
   * Plain folders first; folders reached through a symlink wait until no plain folder is left, and go in
   * path order. So when a link and a plain folder reach the same place, the plain path is the one kept,
   * whatever order the file system lists entries in.
   */
  async run(root: Folder): Promise<void> {
    const folders: Folder[] = [root];
    let linked: Folder[] = [];
    for (;;) {
      const folder = folders.pop();
      if (folder) {
        await this.walkFolder(folder, folders, linked);
        continue;
      }
      if (linked.length === 0) return;
      linked.sort((a, b) => compareCodeUnits(a.relative, b.relative));
      for (const link of linked) {
        let real: string;
        try {
          real = fs.realpathSync(link.absolute);
        } catch {
          this.skip("unreadable");
          continue;
        }
        if (this.visited.has(real)) this.skip("symlinkLoop");
        else {
          this.visited.add(real);
          folders.push({ ...link, real });
        }
      }
      linked = [];
    }
  }

  private async walkFolder(folder: Folder, folders: Folder[], linked: Folder[]): Promise<void> {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(folder.absolute, { withFileTypes: true });
    } catch (error) {
      if (folder.relative === "") throw new Error(`Cannot list ${folder.absolute}: ${describe(error)}.`);
      this.skip("unreadable");
      return;
    }
    let ignores = folder.ignores;
    const base = folder.relative ? `${folder.relative}/` : "";
    for (const name of IGNORE_FILES) {
      if (!entries.some((entry) => entry.name === name)) continue;
      const text = readTextOrUndefined(path.join(folder.absolute, name));
      if (text !== undefined) ignores = ignores.withRules(text, base);
    }

    for (const entry of entries) {
      await this.pause();
      const name = entry.name;
      if (name === ".git") continue; // the repository's own database, never content
      const relative = base + name;
      const absolute = path.join(folder.absolute, name);
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      const isLink = entry.isSymbolicLink();
      if (isLink) {
        let target: fs.Stats;
        try {
          target = fs.statSync(absolute);
        } catch (error) {
          // ELOOP: links that point at each other; anything else (ENOENT above all): a dangling link.
          this.skip((error as NodeJS.ErrnoException).code === "ELOOP" ? "symlinkLoop" : "unreadable");
          continue;
        }
        isDirectory = target.isDirectory();
        isFile = target.isFile();
      }

      if (isDirectory) {
        if (this.exclude.matches(relative) || ignores.isIgnored(relative, true)) {
          this.skip("ignored");
          continue;
        }
        const child: Folder = { absolute, relative, real: "", ignores: ignores.enter(relative) };
        if (isLink) linked.push(child);
        else {
          child.real = path.join(folder.real, name);
          if (this.visited.has(child.real)) this.skip("symlinkLoop");
          else {
            this.visited.add(child.real);
            folders.push(child);
          }
        }
        continue;
      }
      if (!isFile) {
        this.skip("unreadable"); // a FIFO, socket or device: not something to read into a prompt
        continue;
      }
      if (this.exclude.matches(relative) || ignores.isIgnored(relative, false)) {
        this.skip("ignored");
        continue;
      }
      if (!this.include.isEmpty && !this.isIncluded(relative)) {
        this.skip("notIncluded");
        continue;
      }
      const byName = skipReasonByName(name);
      if (byName) {
        this.skip(byName);
        continue;
      }
      this.readFile(absolute, relative, name);
    }
  }

  /** An include glob may name the file or any folder above it ("src" includes everything in src/). */
  private isIncluded(relative: string): boolean {
    for (let at = relative.length; at > 0; at = relative.lastIndexOf("/", at - 1)) {
      if (this.include.matches(relative.slice(0, at))) return true;
    }
    return false;
  }

  private readFile(absolute: string, relative: string, name: string): void {
    let fd: number;
    try {
      fd = fs.openSync(absolute, OPEN_FLAGS);
    } catch {
      this.skip("unreadable");
      return;
    }
    try {
      const stats = fs.fstatSync(fd);
      if (!stats.isFile()) return this.skip("unreadable");
      // The size is checked before reading, so a file of gigabytes costs one fstat.
      if (stats.size > this.maxBytes) return this.skip("tooLarge");
      const content = readAll(fd, stats.size);
      if (looksBinary(content) || !isUtf8(content)) return this.skip("binary");
      const text = content.toString("utf8", hasByteOrderMark(content) ? 3 : 0);
      if ((mayHoldToken(name) && holdsToken(text)) || holdsPrivateKey(text)) return this.skip("secret");
      if (looksMinified(content)) return this.skip("minified");
      this.files.push({ path: relative, bytes: content.length, mtimeMs: stats.mtimeMs, text });
    } catch {
      this.skip("unreadable");
    } finally {
      fs.closeSync(fd);
    }
  }

  private skip(reason: SkipReason): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
  }

  private async pause(): Promise<void> {
    if (this.options.isCancelled?.()) throw new IndexCancelled();
    if (performance.now() - this.lastYield < YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.lastYield = performance.now();
    if (this.options.isCancelled?.()) throw new IndexCancelled();
  }
}

function hasByteOrderMark(content: Buffer): boolean {
  return content.length >= 3 && content[0] === 0xef && content[1] === 0xbb && content[2] === 0xbf;
}

/** Reads up to `size` bytes; a file that shrank while being read gives what was there. */
function readAll(fd: number, size: number): Buffer {
  const buffer = Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const read = fs.readSync(fd, buffer, filled, size - filled, filled);
    if (read === 0) break;
    filled += read;
  }
  return filled === size ? buffer : buffer.subarray(0, filled);
}

/**
 * The rules that apply before the walk starts: `.git/info/exclude` and the .gitignore files of the folders
 * between the repository root and the workspace, when the workspace is a folder inside a repository.
 */
function repositoryRules(absoluteRoot: string): IgnoreStack {
  const repository = findRepositoryRoot(absoluteRoot);
  if (!repository) return IgnoreStack.empty();
  let stack = IgnoreStack.empty();
  const prefixOf = (folder: string): string => {
    const relative = path.relative(folder, absoluteRoot).split(path.sep).join("/");
    return relative ? `${relative}/` : "";
  };
  const exclude = readTextOrUndefined(path.join(gitDirectory(repository), "info", "exclude"));
  if (exclude !== undefined) stack = stack.withRules(exclude, "", prefixOf(repository));
  // Folders from the repository root down to (not including) the workspace; its own files come with the walk.
  const between: string[] = [];
  for (let folder = absoluteRoot; folder !== repository; ) {
    folder = path.dirname(folder);
    between.unshift(folder);
  }
  for (const folder of between) {
    const text = readTextOrUndefined(path.join(folder, ".gitignore"));
    if (text !== undefined) stack = stack.withRules(text, "", prefixOf(folder));
  }
  return stack;
}

function findRepositoryRoot(start: string): string | undefined {
  for (let folder = start; ; folder = path.dirname(folder)) {
    if (fs.existsSync(path.join(folder, ".git"))) return folder;
    if (path.dirname(folder) === folder) return undefined;
  }
}

/** `.git` is a folder, or in a worktree or submodule a file "gitdir: <path>" (with a "commondir" inside). */
function gitDirectory(repository: string): string {
  const dotGit = path.join(repository, ".git");
  const pointer = readTextOrUndefined(dotGit);
  if (pointer === undefined) return dotGit;
  const match = /^gitdir:\s*(.+)$/m.exec(pointer);
  if (!match) return dotGit;
  const gitDir = path.resolve(repository, match[1].trim());
  const common = readTextOrUndefined(path.join(gitDir, "commondir"));
  return common === undefined ? gitDir : path.resolve(gitDir, common.trim());
}

function readTextOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such folder";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  return error instanceof Error ? error.message : String(error);
}
