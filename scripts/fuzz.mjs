// npm run fuzz -- TARGET [SECONDS] [--runs=N]
// Builds the libFuzzer + AddressSanitizer target native/fuzz/fuzz_TARGET.cpp with clang in build/fuzz,
// writes seed inputs (tiny valid files, generated here so nothing binary is committed), runs the
// fuzzer for SECONDS (default 60; with --runs=N, until N executions or SECONDS) at low priority, prints the execution count and exits non-zero on
// a crash, leak, timeout or sanitizer report. Installs nothing: it says what to install when clang or
// libFuzzer is missing. The engine test suite imports probeToolchain() and runFuzzer() from here.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const buildDir = path.join(root, "build", "fuzz");
const installHint =
  "install clang with libFuzzer: `apt-get install clang libclang-rt-14-dev` (Debian 12; the runtime package holds libFuzzer)";

export const fuzzTargets = ["gguf"];

// Returns null when clang++, cmake and libFuzzer are usable, else a sentence saying what is missing.
export function probeToolchain() {
  for (const [tool, args] of [["clang++", ["--version"]], ["cmake", ["--version"]]]) {
    const r = spawnSync(tool, args, { encoding: "utf8" });
    if (r.error || r.status !== 0) {
      return tool === "clang++" ? `clang++ not found; ${installHint}` : "cmake not found; install cmake";
    }
  }
  fs.mkdirSync(buildDir, { recursive: true });
  const probe = path.join(buildDir, "probe-libfuzzer");
  const r = spawnSync(
    "clang++",
    ["-fsanitize=fuzzer,address", "-x", "c++", "-", "-o", probe],
    {
      input: 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n',
      encoding: "utf8",
    },
  );
  if (r.status !== 0) {
    const firstError = (r.stderr || "").split("\n").find((l) => l.includes("error")) || "link failed";
    return `clang++ cannot build a libFuzzer binary (${firstError.trim()}); ${installHint}`;
  }
  return null;
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8" });
  if (r.error || r.status !== 0) {
    const out = `${r.stdout || ""}${r.stderr || ""}`.trim().split("\n").slice(-40).join("\n");
    throw new Error(`${what} failed (${cmd} ${args.join(" ")}):\n${out || r.error}`);
  }
}

// Configures build/fuzz with clang and builds fuzz_TARGET; returns the binary's path.
export function buildFuzzer(target) {
  const generator = spawnSync("ninja", ["--version"]).status === 0 ? ["-G", "Ninja"] : [];
  run(
    "cmake",
    [
      "-S", path.join(root, "native"), "-B", buildDir, ...generator,
      "-DCMAKE_C_COMPILER=clang", "-DCMAKE_CXX_COMPILER=clang++",
      "-DHCATTN_FUZZ=ON", "-DHCATTN_CUDA=OFF",
    ],
    "configuring the fuzz build",
  );
  run(
    "cmake",
    ["--build", buildDir, "--target", `fuzz_${target}`, "-j", String(Math.max(1, os.availableParallelism?.() ?? 2))],
    `building fuzz_${target}`,
  );
  return path.join(buildDir, `fuzz_${target}`);
}

// ---- GGUF seeds: a few small valid files (FORMATS.md §1) covering every value type, arrays, both
// versions, a custom alignment and one tensor of every type the engine computes with.

const VT = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 };
const TT = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q2_K: 10, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 };
const blockBytes = { 0: [1, 4], 1: [1, 2], 2: [32, 18], 8: [32, 34], 10: [256, 84], 12: [256, 144], 13: [256, 176], 14: [256, 210], 30: [1, 2] };

function u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; }
function i32(v) { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; }
function u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; }
function str(s) { const b = Buffer.from(s, "utf8"); return Buffer.concat([u64(b.length), b]); }

function scalar(type, v) {
  const b = Buffer.alloc({ 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }[type]);
  switch (type) {
    case VT.U8: case VT.BOOL: b.writeUInt8(v); break;
    case VT.I8: b.writeInt8(v); break;
    case VT.U16: b.writeUInt16LE(v); break;
    case VT.I16: b.writeInt16LE(v); break;
    case VT.U32: b.writeUInt32LE(v); break;
    case VT.I32: b.writeInt32LE(v); break;
    case VT.F32: b.writeFloatLE(v); break;
    case VT.U64: b.writeBigUInt64LE(BigInt(v)); break;
    case VT.I64: b.writeBigInt64LE(BigInt(v)); break;
    case VT.F64: b.writeDoubleLE(v); break;
  }
  return b;
}

// kvs: [key, type, value] with value an array [elemType, values] for ARRAY.
// tensors: [name, typeId, ne[]]; data bytes are a deterministic pattern with sane half scales.
function gguf({ version = 3, alignment = 32, kvs = [], tensors = [] }) {
  const parts = [Buffer.from("GGUF"), u32(version), u64(tensors.length), u64(kvs.length)];
  for (const [key, type, value] of kvs) {
    parts.push(str(key), i32(type));
    if (type === VT.STRING) parts.push(str(value));
    else if (type === VT.ARRAY) {
      const [elem, values] = value;
      parts.push(i32(elem), u64(values.length));
      for (const v of values) parts.push(elem === VT.STRING ? str(v) : scalar(elem, v));
    } else parts.push(scalar(type, value));
  }
  const align = (x) => Math.ceil(x / alignment) * alignment;
  let offset = 0;
  const datas = [];
  for (const [name, type, ne] of tensors) {
    const [blck, bytes] = blockBytes[type];
    const n = ne.reduce((a, b) => a * b, 1);
    const data = Buffer.alloc((n / blck) * bytes);
    for (let k = 0; k < data.length; ++k) data[k] = (k * 37 + 11) & 0xff;
    if (blck > 1) {
      // Put the half scales of each block at plausible values (0.0625 and 0.03125).
      for (let b = 0; b < data.length; b += bytes) {
        const at = type === TT.Q6_K ? b + 208 : b;
        data.writeUInt16LE(0x2c00, at);
        if (type === TT.Q4_K || type === TT.Q5_K) data.writeUInt16LE(0x2800, b + 2);
      }
    }
    offset = align(offset);
    parts.push(str(name), u32(ne.length), ...ne.map((d) => u64(d)), i32(type), u64(offset));
    datas.push([offset, data]);
    offset += data.length;
  }
  let head = Buffer.concat(parts);
  if (tensors.length === 0) return head;
  head = Buffer.concat([head, Buffer.alloc(align(head.length) - head.length)]);
  const body = Buffer.alloc(offset);
  for (const [at, data] of datas) data.copy(body, at);
  return Buffer.concat([head, body]);
}

export function ggufSeeds() {
  const everyType = [
    ["general.architecture", VT.STRING, "llama"],
    ["t.u8", VT.U8, 200], ["t.i8", VT.I8, -5], ["t.u16", VT.U16, 60000], ["t.i16", VT.I16, -300],
    ["t.u32", VT.U32, 4000000000], ["t.i32", VT.I32, -7], ["t.f32", VT.F32, 1e-5], ["t.bool", VT.BOOL, 1],
    ["t.u64", VT.U64, 2n ** 40n], ["t.i64", VT.I64, -(2n ** 40n)], ["t.f64", VT.F64, 500000],
    ["tokenizer.ggml.tokens", VT.ARRAY, [VT.STRING, ["<|begin_of_text|>", "a", "\u0120the", ""]]],
    ["tokenizer.ggml.token_type", VT.ARRAY, [VT.I32, [3, 1, 1, 1]]],
    ["tokenizer.ggml.scores", VT.ARRAY, [VT.F32, [0, -1.5, 2]]],
    ["t.bools", VT.ARRAY, [VT.BOOL, [0, 1]]],
  ];
  return {
    "empty.gguf": gguf({}),
    "metadata.gguf": gguf({ kvs: everyType }),
    "tensors.gguf": gguf({
      kvs: [["general.architecture", VT.STRING, "llama"], ["llama.block_count", VT.U32, 1]],
      tensors: [
        ["token_embd.weight", TT.F32, [4, 2]],
        ["output_norm.weight", TT.F16, [8]],
        ["rope_freqs.weight", TT.BF16, [4]],
        ["blk.0.attn_q.weight", TT.Q8_0, [32, 2]],
        ["blk.0.attn_k.weight", TT.Q4_0, [32, 1, 2]],
        ["blk.0.ffn_up.weight", TT.Q4_K, [256]],
        ["blk.0.ffn_gate.weight", TT.Q5_K, [256]],
        ["blk.0.ffn_down.weight", TT.Q6_K, [256, 1, 1, 1]],
        ["blk.0.attn_v.weight", TT.Q2_K, [256]],
      ],
    }),
    "v2-align64.gguf": gguf({
      version: 2,
      alignment: 64,
      kvs: [["general.alignment", VT.U32, 64], ["general.name", VT.STRING, "seed"]],
      tensors: [["a", TT.F32, [3]], ["b", TT.Q8_0, [32]]],
    }),
  };
}

const ggufDictionary = [
  "GGUF", "general.alignment", "general.architecture", "llama", "tokenizer.ggml.tokens",
  "\\x03\\x00\\x00\\x00", "\\x02\\x00\\x00\\x00", "\\x09\\x00\\x00\\x00", "\\x08\\x00\\x00\\x00",
  "\\x20\\x00\\x00\\x00", "\\x0c\\x00\\x00\\x00", "\\x0e\\x00\\x00\\x00", "\\x1e\\x00\\x00\\x00",
  "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff", "\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x80",
];

function writeSeeds(target) {
  if (target !== "gguf") throw new Error(`no seeds defined for fuzz target '${target}'`);
  const seedDir = path.join(buildDir, `seeds-${target}`);
  fs.rmSync(seedDir, { recursive: true, force: true });
  fs.mkdirSync(seedDir, { recursive: true });
  for (const [name, bytes] of Object.entries(ggufSeeds())) fs.writeFileSync(path.join(seedDir, name), bytes);
  const dict = path.join(buildDir, `${target}.dict`);
  fs.writeFileSync(dict, ggufDictionary.map((w, k) => `kw${k}="${w}"`).join("\n") + "\n");
  return { seedDir, dict };
}

// Builds and runs the fuzzer; resolves to { ok, execs, execsPerSecond, seconds, exitCode, artifacts,
// tail }. `log` receives progress lines.
export async function runFuzzer({ target, seconds, runs = 0, log = console.log }) {
  if (!fuzzTargets.includes(target)) {
    throw new Error(`unknown fuzz target '${target}' (known: ${fuzzTargets.join(", ")})`);
  }
  const binary = buildFuzzer(target);
  const { seedDir, dict } = writeSeeds(target);
  const corpusDir = path.join(buildDir, `corpus-${target}`);
  const artifactDir = path.join(buildDir, `artifacts-${target}`);
  fs.mkdirSync(corpusDir, { recursive: true });
  fs.mkdirSync(artifactDir, { recursive: true });
  const before = new Set(fs.readdirSync(artifactDir));
  const args = [
    `-max_total_time=${seconds}`, ...(runs > 0 ? [`-runs=${runs}`] : []), "-timeout=10", "-rss_limit_mb=2048", "-max_len=4096",
    "-print_final_stats=1", `-dict=${dict}`, `-artifact_prefix=${artifactDir}${path.sep}`,
    corpusDir, seedDir,
  ];
  log(`fuzz_${target}: running for ${seconds} s (corpus ${path.relative(root, corpusDir)})`);
  const started = Date.now();
  const child = spawn(binary, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  try {
    os.setPriority(child.pid, 10);  // a background stress run must not starve interactive work
  } catch {
    // Lowering priority is a courtesy; failing to is harmless.
  }
  const lines = [];
  let partial = "";
  let reporting = false;
  const onData = (chunk) => {
    partial += chunk.toString("utf8");
    const parts = partial.split("\n");
    partial = parts.pop();
    for (const line of parts) {
      lines.push(line);
      if (lines.length > 400) lines.shift();
      if (/==\d+==ERROR|deadly signal|SUMMARY:|runtime error:/.test(line)) reporting = true;
      if (reporting || /^#\d+\s+(pulse|DONE)/.test(line)) log(line);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exitCode = await new Promise((resolve) => child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  if (partial) lines.push(partial);
  const text = lines.join("\n");
  const stat = (name) => Number((text.match(new RegExp(`stat::${name}:\\s*(\\d+)`)) || [])[1] ?? NaN);
  const execs = stat("number_of_executed_units");
  const elapsed = (Date.now() - started) / 1000;
  const artifacts = fs.readdirSync(artifactDir).filter((f) => !before.has(f)).map((f) => path.join(artifactDir, f));
  return {
    ok: exitCode === 0 && artifacts.length === 0,
    execs,
    execsPerSecond: Number.isFinite(execs) ? Math.round(execs / elapsed) : NaN,
    peakRssMb: stat("peak_rss_mb"),
    seconds: elapsed,
    exitCode,
    artifacts,
    tail: lines.slice(-60).join("\n"),
  };
}

async function main(argv) {
  const runsArg = argv.find((a) => a.startsWith("--runs="));
  const [target, secondsArg] = argv.filter((a) => a !== runsArg);
  if (!target || !fuzzTargets.includes(target)) {
    console.error(`usage: npm run fuzz -- TARGET [SECONDS] [--runs=N]   (targets: ${fuzzTargets.join(", ")})`);
    return 2;
  }
  const seconds = secondsArg === undefined ? 60 : Number(secondsArg);
  const runs = runsArg === undefined ? 0 : Number(runsArg.slice("--runs=".length));
  if (!Number.isInteger(seconds) || seconds < 1 || !Number.isInteger(runs) || runs < 0) {
    console.error(`SECONDS and --runs must be positive whole numbers, got '${secondsArg}' and '${runsArg}'`);
    return 2;
  }
  const missing = probeToolchain();
  if (missing) {
    console.error(`fuzz: ${missing}`);
    return 1;
  }
  const r = await runFuzzer({ target, seconds, runs });
  console.log(
    `fuzz_${target}: ${r.execs} executions in ${r.seconds.toFixed(1)} s (${r.execsPerSecond}/s), ` +
      `peak RSS ${r.peakRssMb} MB, exit code ${r.exitCode}`,
  );
  if (!r.ok) {
    console.error(r.tail);
    console.error(`fuzz_${target}: FAILED${r.artifacts.length ? `; reproduce with ${r.artifacts.map((a) => `build/fuzz/fuzz_${target} ${path.relative(root, a)}`).join(" ; ")}` : ""}`);
    return 1;
  }
  console.log(`fuzz_${target}: no crashes`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err) => { console.error(`fuzz: ${err.message}`); process.exitCode = 1; },
  );
}
