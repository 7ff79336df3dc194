// Downloads a model file over HTTP(S) into a folder: resumable (HTTP Range from a .part file, also
// after the connection is cut mid-way), checked against a sha256 when one is known, and refused up front
// when the disk cannot hold it. No vscode import: the command wraps it, tests run it against a local server.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat, statfs } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { formatBytes } from "../chat/summary";

export type DownloadProblem = "http" | "network" | "checksum" | "diskFull" | "cancelled";

/** A failure with a sentence the user can act on; `problem` says which kind. */
export class DownloadError extends Error {
  constructor(
    readonly problem: DownloadProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface DownloadProgress {
  receivedBytes: number;
  /** 0 when the server does not say. */
  totalBytes: number;
  bytesPerSecond: number;
  /** Seconds left at the current speed; undefined when unknown. */
  etaSeconds?: number;
}

export interface DownloadOptions {
  url: string;
  /** Folder the model ends up in (created when missing). */
  folder: string;
  /** Defaults to the last part of the URL's path. */
  fileName?: string;
  /** Expected sha256 (hex). When absent, `<url>.sha256` and the server's X-Linked-Etag are tried. */
  sha256?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Bytes free for new files in a folder; statfs by default. */
  freeSpace?: (folder: string) => Promise<number>;
  /** How often a cut connection is resumed within one call. */
  retries?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  /** The verified sha256, or undefined when no checksum was known. */
  sha256?: string;
  /** Bytes that were already on disk from an earlier, interrupted download. */
  resumedFrom: number;
  /** Times the connection was cut and resumed during this call. */
  resumes: number;
}

/** Room kept free beyond the file, so that a download never fills the disk to the last byte. */
const DISK_MARGIN_BYTES = 256 * 2 ** 20;
const PROGRESS_INTERVAL_MS = 250;
const MAX_REDIRECTS = 8;

export function fileNameOf(url: string): string {
  const last = decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");
  const safe = last.replace(/[\\/:*?"<>|\0]/g, "_");
  return safe || "model.gguf";
}

export async function statfsFreeSpace(folder: string): Promise<number> {
  const s = await statfs(folder);
  return s.bavail * s.bsize;
}

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { url, folder, signal } = options;
  const fileName = options.fileName ?? fileNameOf(url);
  const target = path.join(folder, fileName);
  const part = `${target}.part`;
  await mkdir(folder, { recursive: true });
  const freeSpace = options.freeSpace ?? statfsFreeSpace;
  let expected = options.sha256?.trim().toLowerCase() || (await checksumFile(url, signal));

  const resumedFrom = await sizeOf(part);
  let received = resumedFrom;
  let total = 0;
  let resumes = 0;
  const retries = options.retries ?? 5;
  const started = performance.now();
  let lastReport = 0;
  const report = (force: boolean) => {
    const now = performance.now();
    if (!options.onProgress || (!force && now - lastReport < PROGRESS_INTERVAL_MS)) return;
    lastReport = now;
    const seconds = (now - started) / 1000;
    const bytesPerSecond = seconds > 0 ? (received - resumedFrom) / seconds : 0;
    const etaSeconds = total > 0 && bytesPerSecond > 0 ? (total - received) / bytesPerSecond : undefined;
    options.onProgress({ receivedBytes: received, totalBytes: total, bytesPerSecond, etaSeconds });
  };

  for (let attempt = 0; ; attempt++) {
    throwIfCancelled(signal, received, total);
    const response = await get(url, received > 0 ? { Range: `bytes=${received}-` } : {}, signal);
    if (!expected) expected = linkedSha256(response.finalHeaders);
    if (response.statusCode === 416 && received > 0) {
      // Nothing past what we have: the .part file is complete.
      response.resume();
      total = received;
      break;
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      response.resume();
      throw new DownloadError(
        "http",
        `The server answered ${response.statusCode} ${response.statusMessage ?? ""} for ${url}. Check repoLlama.model.downloadUrl.`.replace(
          /\s+\./,
          ".",
        ),
      );
    }
    if (response.statusCode === 200 && received > 0) {
      // The server ignored the Range header: start over.
      received = 0;
    }
    const length = Number(response.headers["content-length"] ?? 0);
    total = length > 0 ? received + length : totalFromContentRange(response.headers["content-range"]);
    if (attempt === 0 && total > 0) {
      const free = await freeSpace(folder);
      const needed = total - received + DISK_MARGIN_BYTES;
      if (free < needed) {
        response.destroy();
        throw new DownloadError(
          "diskFull",
          `${fileName} needs ${formatBytes(total - received)} more on disk (plus ${formatBytes(DISK_MARGIN_BYTES)} to spare), ` +
            `but ${folder} has only ${formatBytes(free)} free. Free some space and run Download Model again.`,
        );
      }
    }
    const cut = await writeBody(response, part, received, (n) => {
      received += n;
      report(false);
    });
    if (!cut && (total === 0 || received >= total)) break;
    throwIfCancelled(signal, received, total);
    if (attempt >= retries) {
      throw new DownloadError(
        "network",
        `The download of ${fileName} was interrupted after ${formatBytes(received)}${total ? ` of ${formatBytes(total)}` : ""}. ` +
          "Run Download Model again: it resumes where it stopped.",
      );
    }
    resumes++;
  }
  report(true);

  let verified: string | undefined;
  if (expected) {
    const actual = await sha256OfFile(part);
    if (actual !== expected) {
      await rm(part, { force: true });
      throw new DownloadError(
        "checksum",
        `The downloaded ${fileName} is damaged or not the expected file: its sha256 is ${actual}, but ${expected} was expected. ` +
          "It was deleted; run Download Model again, or check the URL and checksum.",
      );
    }
    verified = actual;
  }
  await rename(part, target);
  return { path: target, bytes: received, sha256: verified, resumedFrom, resumes };
}

function throwIfCancelled(signal: AbortSignal | undefined, received: number, total: number): void {
  if (signal?.aborted) {
    throw new DownloadError(
      "cancelled",
      `Download cancelled after ${formatBytes(received)}${total ? ` of ${formatBytes(total)}` : ""}; running it again resumes from there.`,
    );
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

function totalFromContentRange(header: string | undefined): number {
  const match = /\/(\d+)\s*$/.exec(header ?? "");
  return match ? Number(match[1]) : 0;
}

/** Hugging Face answers LFS files with X-Linked-Etag: "<sha256>" on the redirect to its CDN. */
function linkedSha256(headers: http.IncomingHttpHeaders[]): string | undefined {
  for (const h of headers) {
    const value = h["x-linked-etag"];
    const match = typeof value === "string" ? /^"?([0-9a-f]{64})"?$/i.exec(value.trim()) : null;
    if (match) return match[1].toLowerCase();
  }
  return undefined;
}

/** The checksum published next to the file as `<url>.sha256` ("<hex>" or "<hex>  <name>"), if any. */
async function checksumFile(url: string, signal?: AbortSignal): Promise<string | undefined> {
  let response: Response;
  try {
    response = await get(`${url}.sha256`, {}, signal);
  } catch (error) {
    if (error instanceof DownloadError && error.problem === "cancelled") throw error;
    return undefined; // no checksum published: the download goes on without one
  }
  if (response.statusCode !== 200) {
    response.resume();
    return undefined;
  }
  let text = "";
  for await (const chunk of response) {
    text += chunk;
    if (text.length > 4096) break;
  }
  response.destroy();
  return /^\s*([0-9a-fA-F]{64})\b/.exec(text)?.[1].toLowerCase();
}

type Response = http.IncomingMessage & { finalHeaders: http.IncomingHttpHeaders[] };

/** GET following redirects; finalHeaders holds the headers of every hop. */
function get(url: string, headers: Record<string, string>, signal?: AbortSignal, hops: http.IncomingHttpHeaders[] = []): Promise<Response> {
  return new Promise((resolve, reject) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      reject(new DownloadError("http", `"${url}" is not a valid URL. Check repoLlama.model.downloadUrl.`));
      return;
    }
    const client = parsed.protocol === "https:" ? https : parsed.protocol === "http:" ? http : undefined;
    if (!client) {
      reject(new DownloadError("http", `Only http:// and https:// URLs can be downloaded, not ${parsed.protocol}//.`));
      return;
    }
    const request = client.get(parsed, { headers: { "User-Agent": "repo-llama", ...headers }, signal }, (response) => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (status >= 300 && status < 400 && location) {
        response.resume();
        if (hops.length >= MAX_REDIRECTS) {
          reject(new DownloadError("http", `${url} redirects more than ${MAX_REDIRECTS} times.`));
          return;
        }
        get(new URL(location, parsed).toString(), headers, signal, [...hops, response.headers]).then(resolve, reject);
        return;
      }
      resolve(Object.assign(response, { finalHeaders: [...hops, response.headers] }));
    });
    request.on("error", (error) => {
      if (signal?.aborted) reject(new DownloadError("cancelled", "Download cancelled; running it again resumes from there."));
      else reject(new DownloadError("network", `Could not reach ${parsed.host}: ${error.message}. Check the network and the URL.`));
    });
  });
}

/**
 * Appends the body to the .part file from byte `offset`. Resolves true when the connection was cut before
 * the body ended (what was received is on disk), false when the body ended normally.
 */
function writeBody(response: http.IncomingMessage, part: string, offset: number, onBytes: (n: number) => void): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(part, offset > 0 ? { flags: "r+", start: offset } : { flags: "w" });
    let cut = false;
    response.on("data", (chunk: Buffer) => onBytes(chunk.length));
    // A cut connection shows as an error, or only as a close before the body was complete.
    const endEarly = () => {
      if (response.complete) return;
      cut = true;
      out.end();
    };
    response.on("error", endEarly);
    response.on("close", endEarly);
    out.on("error", (error) =>
      reject(new DownloadError("diskFull", `Writing ${part} failed: ${error.message}. Free some disk space and run Download Model again.`)),
    );
    out.on("close", () => resolve(cut || !response.complete));
    response.pipe(out);
  });
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
