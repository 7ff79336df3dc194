// The scripted model's answer for the chat tests (test/fixtures/scripted.ts): a citation of a fixture
// file (src/cart.ts line 5 is `export function total`), markdown, and HTML that must show as text. Every
// Llama-3 token of a script must be different, which is why the wording is as it is.
export const CITED_PATH = "src/cart.ts";
export const CITED_LINE = 5;
export const CHAT_SCRIPT =
  `The total is computed in ${CITED_PATH}:${CITED_LINE} and calls **formatPrice** to round it:\n\n` +
  "## Notes\n- Run `npm test` for checks.\n\n" +
  "<img src=x onerror=alert(1)>";

/**
 * CHAT_SCRIPT followed by `count` distinct words from the vocabulary, for an answer long enough to stop
 * in the middle. `words` are vocabulary entries like " example" (leading space, letters only).
 */
export function longChatScript(words: Iterable<string>, count: number): string {
  const pool = [...words].filter((w) => /^ [a-z]{6,9}$/.test(w)).sort();
  if (pool.length < count) throw new Error(`only ${pool.length} words to build a ${count}-word script from`);
  const step = Math.floor(pool.length / count);
  return `${CHAT_SCRIPT}\nMore${Array.from({ length: count }, (_, i) => pool[i * step]).join("")}`;
}
