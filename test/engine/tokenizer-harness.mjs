// Shared pieces of the tokenizer oracle test and benchmark: finding our addon and the fixture GGUF,
// opening llama.cpp (node-llama-cpp, vocabulary only) on the same file, the corpus of installed package
// files, and mismatch reports. Only exports; importing it runs nothing.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureFixtures, loadEngine } from "./oracle-fixtures.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Our addon, found the way every engine test finds it ($HCATTN_ADDON, dist/, the cmake-js build). */
export { loadEngine as loadAddon };

/**
 * A GGUF with the real Llama-3 vocabulary: $HCATTN_TOKENIZER_GGUF (e.g. llama.cpp's own
 * ggml-vocab-llama-bpe.gguf), else the fixture tiny-f32.gguf, written or kept up to date in the shared
 * fixture directory by the fixture generator.
 */
export function tokenizerGguf() {
  return process.env.HCATTN_TOKENIZER_GGUF ?? ensureFixtures(["tiny-f32"])["tiny-f32"];
}

/** llama.cpp's tokenizer on the same file (vocabulary only, no weights loaded). */
export async function openOracle(ggufPath) {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: ggufPath, vocabOnly: true });
  return {
    bos: model.tokens.bos,
    eos: model.tokens.eos,
    tokenize: (text, special) => Int32Array.from(model.tokenize(text, special)),
    detokenize: (ids, special) => model.detokenize(Array.from(ids), special),
    async dispose() {
      await model.dispose();
      await llama.dispose();
    },
  };
}

const CORPUS_EXTENSIONS = [".d.ts", ".ts", ".js", ".json", ".md"];

function packageFiles(pkgDir) {
  const out = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "node_modules") walk(p);
      } else if (entry.isFile() && CORPUS_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) {
        out.push(p);
      }
    }
  };
  walk(pkgDir);
  return out.sort();
}

/** The other installed packages compared besides typescript (small and mid-size, varied text). */
export const OTHER_PACKAGES = [
  "markdown-it", "linkify-it", "mdurl", "uc.micro", "entities", "ignore", "vscode-jsonrpc", "cmake-js",
  "node-addon-api", "@types/node", "@types/vscode", "@types/mocha", "@types/markdown-it", "esbuild",
  "@vscode/vsce", "@vscode/test-electron", "argparse", "yargs", "chalk", "commander", "semver",
  "minimatch", "glob", "debug", "mocha",
];

/** Files of one installed package: [{ name, bytes }] (name relative to node_modules). */
export function corpusOf(pkg) {
  const dir = join(ROOT, "node_modules", pkg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return packageFiles(dir).map((p) => ({ name: relative(join(ROOT, "node_modules"), p), bytes: readFileSync(p) }));
}

/**
 * The code points llama.cpp decodes from raw bytes (each invalid byte → U+FFFD, overlong forms and
 * surrogates accepted), or null when they cannot be written as a JS string (a surrogate or a value past
 * U+10FFFF), i.e. when node-llama-cpp, which only takes strings, cannot be given the same input.
 */
export function llamaCppString(bytes) {
  const cps = [];
  const cont = (i) => i < bytes.length && (bytes[i] & 0xc0) === 0x80;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp = 0xfffd;
    let len = 1;
    if (b < 0x80) {
      cp = b;
    } else if ((b & 0xe0) === 0xc0 && cont(i + 1)) {
      cp = ((b & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      len = 2;
    } else if ((b & 0xf0) === 0xe0 && cont(i + 1) && cont(i + 2)) {
      cp = ((b & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      len = 3;
    } else if ((b & 0xf8) === 0xf0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      cp = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
      len = 4;
    }
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return null;
    cps.push(cp);
    i += len;
  }
  return String.fromCodePoint(...cps);
}

/** Index of the first differing id, or -1 when equal. */
export function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** A readable account of where two id sequences part, with the text around that place. */
export function describeMismatch(label, ours, theirs, detokenize) {
  const i = firstDifference(ours, theirs);
  const from = Math.max(0, i - 4);
  const before = detokenize(theirs.slice(0, i), false);
  const context = JSON.stringify(before.slice(-60)) + " ⟨here⟩ " + JSON.stringify(detokenize(theirs.slice(i, i + 8), false));
  return (
    `${label}: first difference at token ${i} (ours ${ours.length} tokens, llama.cpp ${theirs.length}), ` +
    `text offset ≈ ${before.length} chars\n` +
    `    ours     [${from}..]: ${Array.from(ours.slice(from, i + 6)).join(" ")}\n` +
    `    llama.cpp[${from}..]: ${Array.from(theirs.slice(from, i + 6)).join(" ")}\n` +
    `    context: ${context}`
  );
}
