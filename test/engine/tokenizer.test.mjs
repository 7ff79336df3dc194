// Oracle test: our Llama-3 tokenizer (the hcattn addon) against llama.cpp's (node-llama-cpp, vocabulary
// only) on the same GGUF. Ids must be identical on every .ts/.js/.json/.md/.d.ts file of the installed
// typescript package and of 25 other packages, with and without special-token parsing, and on
// adversarial strings; decode and pieces must match llama.cpp's detokenizer.
//
// Whole files, with special parsing: llama.cpp's special-token pass only changes anything where a
// special token's text occurs, so for a file without any "<|…|>" text its ids with parse_special equal
// those without, and llama.cpp is asked once; files that do contain such text are asked both ways.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { readFileSync } from "node:fs";
import {
  corpusOf,
  describeMismatch,
  firstDifference,
  llamaCppString,
  loadAddon,
  openOracle,
  OTHER_PACKAGES,
  tokenizerGguf,
} from "./tokenizer-harness.mjs";

let ours;
let oracle;
const timing = { ourSeconds: 0, theirSeconds: 0, bytes: 0 };

before(async () => {
  const gguf = tokenizerGguf();
  const { Tokenizer } = loadAddon();
  ours = await Tokenizer.load(gguf);
  oracle = await openOracle(gguf);
});

after(async () => {
  await oracle?.dispose();
  if (timing.bytes > 0) {
    const mb = timing.bytes / 1e6;
    console.log(
      `tokenizer speed on ${mb.toFixed(1)} MB of package files: ours ${(mb / timing.ourSeconds).toFixed(1)} MB/s, ` +
        `llama.cpp ${(mb / timing.theirSeconds).toFixed(2)} MB/s (${(timing.theirSeconds / timing.ourSeconds).toFixed(1)}x)`,
    );
  }
});

const SPECIAL_TEXT = /<\|[a-z_0-9]+\|>/;

/** Compares one file (as text) both ways; returns the mismatch descriptions. */
function compareFile(name, bytes) {
  const text = bytes.toString("utf8");
  const problems = [];
  let t = performance.now();
  const theirs = oracle.tokenize(text, false);
  timing.theirSeconds += (performance.now() - t) / 1000;
  t = performance.now();
  const mine = ours.encode(bytes, false, false);
  timing.ourSeconds += (performance.now() - t) / 1000;
  timing.bytes += bytes.length;
  // Files that are not valid UTF-8 reach llama.cpp as the decoded string (U+FFFD per bad sequence, as
  // Node decodes); pass ours the same string in that case.
  const mineSame = Buffer.from(text, "utf8").equals(bytes) ? mine : ours.encode(text, false, false);
  if (firstDifference(mineSame, theirs) !== -1) problems.push(describeMismatch(name, mineSame, theirs, oracle.detokenize));
  const theirsSpecial = SPECIAL_TEXT.test(text) ? oracle.tokenize(text, true) : theirs;
  const mineSpecial = ours.encode(text, false, true);
  if (firstDifference(mineSpecial, theirsSpecial) !== -1) {
    problems.push(describeMismatch(`${name} (special)`, mineSpecial, theirsSpecial, oracle.detokenize));
  }
  return problems;
}

function comparePackages(packages) {
  const problems = [];
  let files = 0;
  for (const pkg of packages) {
    const corpus = corpusOf(pkg);
    assert.ok(corpus.length > 0, `package ${pkg} is not installed or has no text files`);
    for (const { name, bytes } of corpus) {
      files++;
      problems.push(...compareFile(name, bytes));
    }
  }
  return { problems, files };
}

test("vocabulary facts and the Llama-3 test vectors", () => {
  assert.equal(ours.vocabSize, 128256);
  assert.equal(ours.bos, 128000);
  assert.equal(ours.bos, oracle.bos);
  assert.equal(ours.eos, oracle.eos);
  assert.ok(ours.isEndOfGeneration(128009) && ours.isEndOfGeneration(128001));
  assert.ok(!ours.isEndOfGeneration(128000) && !ours.isEndOfGeneration(13));
  // llama.cpp's models/ggml-vocab-llama-bpe.gguf.out (FORMATS.md §3.8).
  assert.deepEqual(Array.from(ours.encode("ied 4 ½ months", false, false)), [1142, 220, 19, 220, 27154, 4038]);
  assert.deepEqual(Array.from(ours.encode("Führer", false, false)), [37, 51853, 261]);
  assert.deepEqual(Array.from(ours.encode(" ", false, false)), [220]);
  assert.deepEqual(Array.from(ours.encode("\n\n", false, false)), [271]);
  assert.deepEqual(Array.from(ours.encode("Hello", true, false)), [128000, 9906]);
});

test("every text file of the typescript package matches llama.cpp", () => {
  const { problems, files } = comparePackages(["typescript"]);
  assert.ok(files >= 100, `expected the typescript package's files, found ${files}`);
  assert.equal(problems.length, 0, `${problems.length} mismatches in ${files} files:\n${problems.slice(0, 5).join("\n")}`);
});

test(`every text file of ${OTHER_PACKAGES.length} other installed packages matches llama.cpp`, () => {
  const { problems, files } = comparePackages(OTHER_PACKAGES);
  assert.equal(problems.length, 0, `${problems.length} mismatches in ${files} files:\n${problems.slice(0, 5).join("\n")}`);
});

const ADVERSARIAL = [
  "",
  " ",
  "Hello world",
  "你好，世界！这是一个测试。日本語のテキストも。한국어 텍스트도.",
  "emoji 😀😃😄 family 👨‍👩‍👧‍👦 flags 🇺🇸🇫🇷 skin 👍🏽 keycap 1️⃣ zwj 🏳️‍🌈",
  "עברית משמאל לימין, العربية أيضاً ١٢٣٤٥٦",
  "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0357\u0358 \u0301\u0302 combining marks alone",
  " ".repeat(10000),
  " ".repeat(10000) + "x",
  "x" + " ".repeat(9999) + "\n",
  "1".repeat(5000),
  "12345678901234567890 3.14159 1e10 0x1F ½¾ ²³ Ⅻ ①②③ ٣٤٥ ߁߂",
  "<|eot_id|>",
  "a<|eot_id|>b<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|begin_of_text|>",
  "<|eot_id|x> <|reserved_special_token_0|> <|reserved_special_token_250|> <|not_a_token|>",
  "line1\r\nline2\n\r\nline3\r\r\n\n  \n\t\n",
  "\t\tindented\t  mixed \t\n\t",
  "It's he'S we'LL they'Re I'M you'VE she'D don't DON'T ’s ’S 'x '' ''s",
  "trailing space ",
  "trailing spaces   ",
  "\u00a0nbsp\u2003em\u3000ideographic\u0085nel\u2028ls\u2029ps\u200bzw",
  "function f<T>(x: T): Promise<T> { return x ?? await g(...args); } // ok!!!\n",
  "<<<>>> ||| <|  |> <|| ||> <|eot_id",
  "\u0000\u0001\u001f\u007f control",
  "🀄🃏 Ω≈ç√∫ ſ Kelvin \u212a İstanbul ǅ ǈ",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \u{10FFFD} \u{E000} \u{FFFF}",
  "a\u0000b\u0000\u0000c",
  "'s",
  "'",
  "' s",
  "\n",
  "\r",
  "  \n  ",
];

test("adversarial strings match llama.cpp, with and without special tokens", () => {
  const problems = [];
  for (const [i, s] of ADVERSARIAL.entries()) {
    for (const special of [false, true]) {
      const mine = ours.encode(s, false, special);
      const theirs = oracle.tokenize(s, special);
      if (firstDifference(mine, theirs) !== -1) {
        problems.push(describeMismatch(`string #${i} ${JSON.stringify(s.slice(0, 40))}${special ? " (special)" : ""}`, mine, theirs, oracle.detokenize));
      }
    }
  }
  assert.equal(problems.length, 0, problems.join("\n"));
});

// Pieces that meet the pre-tokenizer's rules at their edges: contraction suffixes in both cases, the
// typographic apostrophe, CR/LF mixes, other whitespace, digits of several scripts, marks, CJK, emoji
// with ZWJ and variation selectors, special-token fragments.
const FUZZ_ALPHABET = [
  " ", "  ", "\n", "\r", "\r\n", "\t", "\u00a0", "\u3000", "\u2028", "\u0085", "'", "’", "s", "S", "t", "T",
  "re", "RE", "ve", "ll", "LL", "d", "m", "M", "x", "Hello", "world", "_", "-", ".", ",", "!", "?", "(", ")",
  "{", "}", "<", ">", "|", "/", "\\", "\"", "`", "=", "0", "1", "12", "123", "4567", "½", "٣", "Ⅻ", "²",
  "é", "e\u0301", "\u0301", "中", "文字", "日本", "😀", "👨‍👩‍👧", "\u200d", "\ufe0f", "🇺🇸", "א", "ب",
  "<|eot_id|>", "<|", "|>", "eot_id", "<|begin_of_text|>", "\u{10FFFD}", "\ufeff", "\u0000", "\u007f",
];

test("seeded random strings over the pre-tokenizer's edge cases match llama.cpp", () => {
  let seed = 0x9e3779b9;
  const next = (n) => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return seed % n;
  };
  const problems = [];
  for (let i = 0; i < 3000 && problems.length < 5; i++) {
    let s = "";
    const parts = 1 + next(24);
    for (let k = 0; k < parts; k++) s += FUZZ_ALPHABET[next(FUZZ_ALPHABET.length)];
    const special = (i & 1) === 1;
    const mine = ours.encode(s, false, special);
    const theirs = oracle.tokenize(s, special);
    if (firstDifference(mine, theirs) !== -1) {
      problems.push(describeMismatch(`random string ${JSON.stringify(s)}${special ? " (special)" : ""}`, mine, theirs, oracle.detokenize));
    }
  }
  assert.equal(problems.length, 0, problems.join("\n"));
});

// "\n  C's" splits by C's class: a letter gives " C" + "'s", punctuation or an unassigned code point gives
// " C'" + "s", a number gives " " + "C" + "'s" — so a class that differs from llama.cpp's changes the ids.
const classProbe = (cp) => "\n  " + String.fromCodePoint(cp) + "'s";

test("every code point of planes 0-3 and 14 is classified as llama.cpp does", () => {
  const ranges = [[0, 0xd7ff], [0xe000, 0x3ffff], [0xe0000, 0xe0fff]];
  const problems = [];
  const CHUNK = 4096;
  for (const [first, last] of ranges) {
    for (let start = first; start <= last; start += CHUNK) {
      const end = Math.min(last, start + CHUNK - 1);
      let text = "";
      for (let cp = start; cp <= end; cp++) text += classProbe(cp);
      if (firstDifference(ours.encode(text, false, false), oracle.tokenize(text, false)) === -1) continue;
      for (let cp = start; cp <= end && problems.length < 20; cp++) {
        const mine = ours.encode(classProbe(cp), false, false);
        const theirs = oracle.tokenize(classProbe(cp), false);
        if (firstDifference(mine, theirs) !== -1) {
          problems.push(`U+${cp.toString(16).toUpperCase()}: ours ${Array.from(mine)}, llama.cpp ${Array.from(theirs)}`);
        }
      }
    }
  }
  assert.equal(problems.length, 0, `code points classified differently (first 20):\n${problems.join("\n")}`);
});

test("special tokens: plain text without parsing, one id with it", () => {
  assert.deepEqual(Array.from(ours.encode("<|eot_id|>", false, true)), [128009]);
  const plain = Array.from(ours.encode("<|eot_id|>", false, false));
  assert.ok(plain.length > 1 && !plain.includes(128009), `plain text gave ${plain}`);
  assert.deepEqual(plain, Array.from(oracle.tokenize("<|eot_id|>", false)));
});

test("invalid UTF-8 passed as bytes: each bad byte is U+FFFD, as llama.cpp decodes it", () => {
  const cases = [
    [0x80],
    [0x61, 0xff, 0x62],
    [0xc3],
    [0xc3, 0x28],
    [0xe2, 0x82],
    [0xe2, 0x28, 0xa1],
    [0xf0, 0x9f, 0x98],
    [0xf8, 0x88, 0x80, 0x80, 0x80],
    [0xfe, 0xfe, 0xff, 0xff],
    [0xc0, 0x80],  // overlong NUL: llama.cpp decodes it as U+0000
    [0xc1, 0xbf, 0x20, 0x41],
    [0xe0, 0x80, 0xaf],
    [0x20, 0x80, 0x80, 0x20, 0xbf],
    [0xef, 0xbf, 0xbd, 0xed, 0x9f, 0xbf],
    [...Buffer.from("valid text "), 0xc3, 0xa9, 0x80, ...Buffer.from(" more\n"), 0xf4, 0x8f, 0xbf, 0xbf],
  ];
  const problems = [];
  for (const bytes of cases) {
    const buf = Buffer.from(bytes);
    const asString = llamaCppString(buf);
    assert.notEqual(asString, null, `case ${buf.toString("hex")} is not expressible as a string`);
    for (const special of [false, true]) {
      const mine = ours.encode(buf, false, special);
      const theirs = oracle.tokenize(asString, special);
      if (firstDifference(mine, theirs) !== -1) problems.push(describeMismatch(`bytes ${buf.toString("hex")}`, mine, theirs, oracle.detokenize));
    }
  }
  assert.equal(problems.length, 0, problems.join("\n"));
  // A lone surrogate encoded in UTF-8 (ED A0 80) decodes to U+D800 in llama.cpp and is kept as its 3 bytes.
  const surrogate = Array.from(ours.encode(Buffer.from([0x61, 0xed, 0xa0, 0x80]), false, false));
  assert.deepEqual(ours.decodeBytes(surrogate), Buffer.from([0x61, 0xed, 0xa0, 0x80]));
});

test("decode and tokenToPiece match llama.cpp's detokenizer", () => {
  const samples = [
    readFileSync(new URL("../../node_modules/typescript/README.md", import.meta.url), "utf8"),
    "Hello , world ! It 's a test . We 're here ' quoted ' and you 've got it ?",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "emoji 👨‍👩‍👧‍👦 and 中文",
  ];
  for (const s of samples) {
    for (const special of [false, true]) {
      const ids = ours.encode(s, false, true);
      assert.equal(ours.decode(ids, special), oracle.detokenize(ids, special), `decode of ${JSON.stringify(s.slice(0, 40))}`);
      assert.equal(ours.decode(Uint32Array.from(ids), special), ours.decode(Array.from(ids), special));
    }
  }
  // Every token's piece, where llama.cpp's whole-sequence clean-up cannot change a single piece.
  let compared = 0;
  for (let id = 0; id < ours.vocabSize; id++) {
    const piece = ours.tokenToPiece(id, true);
    if (/ [?!.,']/.test(piece.toString("latin1"))) continue;
    assert.equal(piece.toString("utf8"), oracle.detokenize([id], true), `piece of token ${id}`);
    compared++;
  }
  assert.ok(compared > 127000, `compared only ${compared} pieces`);
  assert.equal(ours.tokenToPiece(128009, false).length, 0);
  assert.equal(ours.tokenToPiece(128009, true).toString(), "<|eot_id|>");
  assert.throws(() => ours.tokenToPiece(128256), /outside the vocabulary/);
});

test("chat template (llama.cpp's built-in llama3) and its tokens", () => {
  const { Tokenizer } = loadAddon();
  const text = Tokenizer.applyChatTemplate(
    [
      { role: "system", content: "  You answer briefly.\n" },
      { role: "user", content: "Hi" },
    ],
    true,
  );
  assert.equal(
    text,
    "<|start_header_id|>system<|end_header_id|>\n\nYou answer briefly.<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  const ids = Array.from(ours.encode(text, true, true));
  assert.deepEqual(ids, [128000, ...oracle.tokenize(text, true)]);
  assert.deepEqual(ids.slice(0, 4), [128000, 128006, 9125, 128007]);
});

test("encodeAsync equals encode; bad arguments are clear errors", async () => {
  const text = readFileSync(new URL("../../node_modules/typescript/lib/lib.dom.d.ts", import.meta.url));
  const [a, b] = await Promise.all([ours.encodeAsync(text, true, false), ours.encodeAsync(text, true, true)]);
  assert.deepEqual(a, ours.encode(text, true, false));
  assert.deepEqual(b, ours.encode(text, true, true));
  assert.throws(() => ours.encode(42, false, false), /string or a Buffer/);
  const { Tokenizer } = loadAddon();
  await assert.rejects(Tokenizer.load("/nonexistent/model.gguf"), /nonexistent/);
});
