// Which files are left out by what they are rather than by ignore rules: secrets, lock files, binaries and
// minified bundles. Decided by name first (no I/O), then by content once a file has been read.
import type { SkipReason } from "./types";

/** Extensions of formats that are not text, so not worth opening. */
const binaryExtensions = new Set(
  (
    "png jpg jpeg gif bmp ico icns webp tif tiff psd ai xcf heic avif svgz " +
    "pdf doc docx xls xlsx ppt pptx odt ods odp epub " +
    "zip gz tgz bz2 xz zst lz4 7z rar tar jar war ear apk aab ipa dmg iso deb rpm msi cab whl egg crx vsix nupkg " +
    "exe dll so dylib o a lib obj pdb ko elf bin dat img class pyc pyo pyd wasm node beam " +
    "mp3 mp4 m4a m4v wav ogg oga flac aac opus avi mov mkv webm wmv flv mid midi " +
    "ttf otf woff woff2 eot " +
    "sqlite sqlite3 db mdb accdb parquet feather arrow avro orc npy npz pkl pickle pt pth ckpt onnx safetensors " +
    "gguf ggml hckv h5 hdf5 tflite pb mlmodel " +
    "blend fbx glb 3ds stl dwg " +
    "swf fla jks keystore"
  ).split(" "),
);

/** Dependency lock files: long, machine-written, and they say little about the code. */
const lockFileNames = new Set([
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  "bun.lock",
  "bun.lockb",
  "deno.lock",
  "cargo.lock",
  "poetry.lock",
  "pipfile.lock",
  "pdm.lock",
  "uv.lock",
  "gemfile.lock",
  "composer.lock",
  "go.sum",
  "go.work.sum",
  "mix.lock",
  "pubspec.lock",
  "podfile.lock",
  "package.resolved",
  "packages.lock.json",
  "paket.lock",
  "gradle.lockfile",
  "flake.lock",
  "cabal.project.freeze",
  "conan.lock",
  "vcpkg-lock.json",
  ".terraform.lock.hcl",
]);

/** Files whose name alone says they hold keys, passwords or tokens. */
const secretFileNames = new Set([
  ".netrc",
  "_netrc",
  ".pgpass",
  ".git-credentials",
  ".htpasswd",
  ".pypirc",
  ".dockercfg",
  "secrets.yml",
  "secrets.yaml",
  "secrets.json",
]);
const secretExtensions = new Set(["pem", "key", "p12", "pfx", "jks", "keystore", "kdbx", "ppk", "gpg", "tfstate", "env"]);
const keyFilePrefixes = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"];
/** credentials.json or .credentials are secrets; credentials.ts in an auth module is code, so it stays. */
const credentialsDataExtensions = new Set(["", "json", "yml", "yaml", "xml", "ini", "toml", "txt", "csv", "conf", "cfg", "properties"]);
/** .env templates are committed on purpose for people to read: .env.example, .env.sample, … */
const envTemplateSuffixes = [".example", ".sample", ".template", ".dist"];
/** Config files that are harmless unless they carry a registry token; their content decides. */
const tokenConfigNames = new Set([".npmrc", ".yarnrc", ".yarnrc.yml"]);
const registryToken = /_authToken\s*[=:]|_auth\s*[=:]|_password\s*[=:]|npmAuthToken\s*:/;

const minifiedName = /[.-]min\.(?:js|mjs|cjs|css)$|\.(?:js|mjs|cjs|css|ts)\.map$/;
/** Below this size an odd line length means little (a one-line JSON file, a short banner). */
const MINIFIED_MIN_BYTES = 4096;
/** Hand-written code averages 30–60 characters a line; bundles and packed data run into the thousands. */
const MINIFIED_MIN_AVERAGE_LINE = 400;
/** Like git and grep: a NUL byte early in the file means binary. */
const BINARY_SNIFF_BYTES = 8192;

function extensionOf(lowerName: string): string {
  const dot = lowerName.lastIndexOf(".");
  return dot > 0 ? lowerName.slice(dot + 1) : "";
}

/** The reason to skip a file known by its name only, or undefined when its content has to decide. */
export function skipReasonByName(name: string): SkipReason | undefined {
  const lower = name.toLowerCase();
  const extension = extensionOf(lower);
  if (isSecretName(lower, extension)) return "secret";
  if (lockFileNames.has(lower)) return "lockFile";
  if (binaryExtensions.has(extension)) return "binary";
  if (minifiedName.test(lower)) return "minified";
  return undefined;
}

function isSecretName(lower: string, extension: string): boolean {
  if (lower === ".env" || lower.startsWith(".env.")) return !envTemplateSuffixes.some((s) => lower.endsWith(s));
  if (secretFileNames.has(lower) || secretExtensions.has(extension)) return true;
  if (keyFilePrefixes.some((prefix) => lower.startsWith(prefix))) return true;
  return /^\.?credentials/.test(lower) && credentialsDataExtensions.has(extension);
}

/** Whether the content check must look for registry tokens in this file. */
export function mayHoldToken(name: string): boolean {
  return tokenConfigNames.has(name.toLowerCase());
}

export function holdsToken(text: string): boolean {
  return registryToken.test(text);
}

const privateKeyBlock = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----/;

/** A PEM or OpenSSH private key in a file whose name gave nothing away (or a link named innocently). */
export function holdsPrivateKey(text: string): boolean {
  return text.includes("PRIVATE KEY") && privateKeyBlock.test(text);
}

export function looksBinary(content: Buffer): boolean {
  return content.subarray(0, BINARY_SNIFF_BYTES).includes(0);
}

export function looksMinified(content: Buffer): boolean {
  if (content.length < MINIFIED_MIN_BYTES) return false;
  let lines = 1;
  let at = content.indexOf(10);
  while (at !== -1) {
    lines++;
    at = content.indexOf(10, at + 1);
  }
  return content.length / lines > MINIFIED_MIN_AVERAGE_LINE;
}
