// The snapshot store: saved contexts on disk, one file per (workspace folder, model digest, KV config),
// kept under a byte cap. It stores opaque payloads inside its own envelope (.snap), so that a damaged or
// truncated file is recognised before anything reads it. The engine writes its own .hckv files (they carry
// their own checksums, and wrapping multi-GB files would read and write every byte twice); the store counts
// them under the same cap and evicts them in the same order.
//
// Invariants:
// - A file named <key>.snap is complete: it is written as a temp file, fsynced, then renamed over the old
//   one (and the folder fsynced), so a crash leaves either the old file or the new one, plus at most a
//   temp file that no reader looks at and that the next store on this folder deletes.
// - Eviction order is least recently used first, by the file's mtime, which put(), get() and markUsed()
//   set from a clock that never repeats a value (equal times would make the order depend on the file system).
// - Total size of the saved contexts (.snap and .hckv) stays under maxBytes after every put() and
//   evictBeyondCap(); the file just written, or named as in use, is never the one evicted.
//
// Envelope (little-endian):
//   0  8 bytes  magic "RLSNAP\0\1"
//   8  u32      envelope version (1)
//  12  u32      metadata length M (UTF-8 JSON: the key's parts and the write time)
//  16  u64      payload length P
//  24  32 bytes sha256 of metadata + payload
//  56  M bytes  metadata
//  56+M P bytes payload
import { createHash, randomBytes } from "node:crypto";
import { open, readdir, readFile, rename, rm, stat, utimes, mkdir } from "node:fs/promises";
import * as path from "node:path";

export interface SnapshotKey {
  /** Absolute path of the workspace folder. */
  workspaceFolder: string;
  /** The model's digest (engine/load's model.digest). */
  modelDigest: string;
  /** Whatever decides the KV layout (budget, codebooks, engine version): compared as canonical JSON. */
  kvConfig: Record<string, unknown>;
}

export interface SnapshotEntry {
  file: string;
  bytes: number;
  lastUsedMs: number;
}

export type SnapshotRead =
  | { kind: "hit"; payload: Buffer; writtenAtMs: number }
  | { kind: "miss" }
  /** The file was damaged and has been deleted; message says what happened. */
  | { kind: "corrupt"; message: string };

const MAGIC = Buffer.from("RLSNAP\0\x01", "latin1");
const VERSION = 1;
const HEADER_BYTES = 56;
const SUFFIX = ".snap";
/** The engine's own snapshot files (written by Context.saveSnapshot), counted and evicted with the store's. */
export const ENGINE_SUFFIX = ".hckv";
const SAVED_SUFFIXES = [SUFFIX, ENGINE_SUFFIX];
const TEMP_MARK = ".tmp-";
/** A temp file this old belongs to no write in progress, whatever its process id says. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export class SnapshotStore {
  private clock = 0;
  private cleaned = false;

  /** maxBytes 0: saving is off (repoLlama.cache.maxDiskGB = 0). */
  constructor(
    readonly folder: string,
    readonly maxBytes: number,
  ) {}

  static fileNameOf(key: SnapshotKey): string {
    const canonical = JSON.stringify([key.workspaceFolder, key.modelDigest, sortKeys(key.kvConfig)]);
    return createHash("sha256").update(canonical).digest("hex").slice(0, 40) + SUFFIX;
  }

  /** Writes the payload atomically, then evicts least recently used snapshots beyond the cap. */
  async put(key: SnapshotKey, payload: Buffer): Promise<{ file: string; bytes: number; evicted: string[] }> {
    if (this.maxBytes <= 0) throw new Error("Saving contexts is off (repoLlama.cache.maxDiskGB is 0).");
    await this.prepare();
    const metadata = Buffer.from(JSON.stringify({ ...key, writtenAtMs: Date.now() }), "utf8");
    const bytes = HEADER_BYTES + metadata.length + payload.length;
    if (bytes > this.maxBytes) {
      throw new Error(
        `The context snapshot is ${formatGB(bytes)} but repoLlama.cache.maxDiskGB allows ${formatGB(this.maxBytes)}; raise it to keep this context across sessions.`,
      );
    }
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(VERSION, 8);
    header.writeUInt32LE(metadata.length, 12);
    header.writeBigUInt64LE(BigInt(payload.length), 16);
    createHash("sha256").update(metadata).update(payload).digest().copy(header, 24);

    const file = path.join(this.folder, SnapshotStore.fileNameOf(key));
    const temp = `${file}${TEMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`;
    const handle = await open(temp, "w");
    try {
      await handle.writev([header, metadata, payload]);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    await rename(temp, file);
    await this.syncFolder();
    await this.touch(file);
    const evicted = await this.evictBeyondCap(file);
    return { file, bytes, evicted };
  }

  /** Records a use of a saved context (a load, or a save the store did not write), for the LRU order. */
  async markUsed(file: string): Promise<void> {
    await this.prepare();
    await this.touch(file);
  }

  /**
   * Deletes least recently used saved contexts until the folder is under the cap, never `inUse`; returns the
   * deleted files. `inUse` alone may still exceed the cap: the caller decides what to do about it.
   */
  async evictBeyondCap(inUse: string): Promise<string[]> {
    const entries = await this.list();
    let total = entries.reduce((sum, e) => sum + e.bytes, 0);
    const evicted: string[] = [];
    for (const entry of entries) {
      if (total <= this.maxBytes) break;
      if (entry.file === inUse) continue;
      await rm(entry.file, { force: true });
      total -= entry.bytes;
      evicted.push(entry.file);
    }
    return evicted;
  }

  /** Reads and verifies a snapshot; a damaged one is deleted and reported as corrupt. */
  async get(key: SnapshotKey): Promise<SnapshotRead> {
    await this.prepare();
    const file = path.join(this.folder, SnapshotStore.fileNameOf(key));
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "miss" };
      throw error;
    }
    const problem = envelopeProblem(data);
    if (problem) {
      await rm(file, { force: true });
      return {
        kind: "corrupt",
        message: `The saved context ${path.basename(file)} was damaged (${problem}) and has been deleted; the context will be prefilled again.`,
      };
    }
    const metadataLength = data.readUInt32LE(12);
    const metadata = JSON.parse(data.subarray(HEADER_BYTES, HEADER_BYTES + metadataLength).toString("utf8")) as { writtenAtMs: number };
    await this.touch(file);
    return { kind: "hit", payload: data.subarray(HEADER_BYTES + metadataLength), writtenAtMs: metadata.writtenAtMs };
  }

  /** The complete saved contexts (.snap and .hckv), least recently used first. */
  async list(): Promise<SnapshotEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const entries: SnapshotEntry[] = [];
    for (const name of names) {
      if (!isSaved(name)) continue;
      try {
        const s = await stat(path.join(this.folder, name));
        entries.push({ file: path.join(this.folder, name), bytes: s.size, lastUsedMs: s.mtimeMs });
      } catch {
        // Deleted meanwhile (another window's eviction): not ours to list.
      }
    }
    return entries.sort((a, b) => a.lastUsedMs - b.lastUsedMs || a.file.localeCompare(b.file));
  }

  /** Deletes every saved context (.snap and .hckv), temp files included; says how many and how large. */
  async clear(): Promise<{ files: number; bytes: number }> {
    let names: string[];
    try {
      names = await readdir(this.folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { files: 0, bytes: 0 };
      throw error;
    }
    let files = 0;
    let bytes = 0;
    for (const name of names) {
      if (!isSaved(name) && !name.includes(TEMP_MARK)) continue;
      const file = path.join(this.folder, name);
      try {
        bytes += (await stat(file)).size;
        await rm(file, { force: true });
        files++;
      } catch {
        // Already gone.
      }
    }
    return { files, bytes };
  }

  /** Creates the folder and, once per store, deletes temp files that crashed writes left behind. */
  private async prepare(): Promise<void> {
    await mkdir(this.folder, { recursive: true });
    if (this.cleaned) return;
    this.cleaned = true;
    for (const entry of await this.list()) this.clock = Math.max(this.clock, entry.lastUsedMs);
    for (const name of await readdir(this.folder)) {
      const at = name.indexOf(TEMP_MARK);
      if (at < 0) continue;
      const file = path.join(this.folder, name);
      const pid = Number(name.slice(at + TEMP_MARK.length).split("-")[0]);
      const s = await stat(file).catch(() => undefined);
      if (!s) continue;
      // Another window may be writing this one right now: only the dead writer's or very old temp files go.
      if (!isAlive(pid) || Date.now() - s.mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
    }
  }

  private async touch(file: string): Promise<void> {
    this.clock = Math.max(Date.now(), this.clock + 1);
    const when = new Date(this.clock);
    await utimes(file, when, when);
  }

  private async syncFolder(): Promise<void> {
    // The rename is durable only once the folder is; not every platform can open a folder for that.
    try {
      const dir = await open(this.folder, "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // Windows: folders cannot be opened as files; NTFS journals the rename itself.
    }
  }
}

function isSaved(name: string): boolean {
  return SAVED_SUFFIXES.some((suffix) => name.endsWith(suffix));
}

/** What is wrong with an envelope, or undefined when it is whole. */
function envelopeProblem(data: Buffer): string | undefined {
  if (data.length < HEADER_BYTES) return `${data.length} bytes, shorter than its header`;
  if (!data.subarray(0, MAGIC.length).equals(MAGIC)) return "not a snapshot file";
  const version = data.readUInt32LE(8);
  if (version !== VERSION) return `envelope version ${version}, this build reads ${VERSION}`;
  const metadataLength = data.readUInt32LE(12);
  const payloadLength = Number(data.readBigUInt64LE(16));
  const expected = HEADER_BYTES + metadataLength + payloadLength;
  if (data.length !== expected) return `${data.length} bytes where the header says ${expected}: truncated`;
  const digest = createHash("sha256").update(data.subarray(HEADER_BYTES)).digest();
  if (!digest.equals(data.subarray(24, 56))) return "checksum mismatch";
  return undefined;
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

function formatGB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GB`;
}
