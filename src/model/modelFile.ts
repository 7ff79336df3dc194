// A first look at a model file before anything loads it: exists, is a regular file, starts with the GGUF
// magic. Full validation (architecture, tensors, tokenizer) is the engine's job when it loads the model.
import { open, stat } from "node:fs/promises";
import * as path from "node:path";
import type { ModelState } from "../chat/messages";

/** "GGUF" as the first four bytes, followed by a little-endian uint32 format version. */
const GGUF_MAGIC = Buffer.from("GGUF", "ascii");

export interface GgufHeaderCheck {
  bytes: number;
  ggufVersion: number;
}

/** Thrown with a sentence a user can act on; `message` ends with a full stop. */
export class ModelFileError extends Error {}

export async function checkGgufFile(filePath: string): Promise<GgufHeaderCheck> {
  if (!path.isAbsolute(filePath)) {
    throw new ModelFileError(`"${filePath}" is not an absolute path.`);
  }
  let info;
  try {
    info = await stat(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelFileError(
      code === "ENOENT" ? `${filePath} does not exist.` : `${filePath} cannot be read (${code ?? String(error)}).`,
    );
  }
  if (!info.isFile()) throw new ModelFileError(`${filePath} is not a file.`);

  const head = Buffer.alloc(8);
  let read = 0;
  try {
    const handle = await open(filePath, "r");
    try {
      ({ bytesRead: read } = await handle.read(head, 0, head.length, 0));
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new ModelFileError(`${filePath} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
  }
  if (read === 0) throw new ModelFileError(`${path.basename(filePath)} is not a GGUF model: the file is empty.`);
  if (read < GGUF_MAGIC.length || !head.subarray(0, GGUF_MAGIC.length).equals(GGUF_MAGIC)) {
    throw new ModelFileError(
      `${path.basename(filePath)} is not a GGUF model: it starts with ${describeBytes(head.subarray(0, Math.min(read, GGUF_MAGIC.length)))} instead of "GGUF".`,
    );
  }
  if (read < head.length) {
    throw new ModelFileError(`${path.basename(filePath)} is not a GGUF model: it has only ${read} bytes.`);
  }
  return { bytes: info.size, ggufVersion: head.readUInt32LE(4) };
}

/** The state of repoLlama.modelPath for the UI: file problems become an "unusable" state with the reason. */
export async function inspectModelPath(modelPath: string): Promise<ModelState> {
  if (modelPath === "") return { kind: "none" };
  try {
    const header = await checkGgufFile(modelPath);
    return { kind: "configured", path: modelPath, ...header };
  } catch (error) {
    if (error instanceof ModelFileError) return { kind: "unusable", path: modelPath, problem: error.message };
    throw error;
  }
}

function describeBytes(bytes: Buffer): string {
  const printable = [...bytes].every((b) => b >= 0x20 && b < 0x7f);
  return printable ? `"${bytes.toString("ascii")}"` : `bytes ${bytes.toString("hex").replace(/(..)/g, "$1 ").trim()}`;
}
