// A small syntax highlighter for code blocks in answers: comments, strings, numbers and keywords of the
// common C-like and script languages, coloured with theme variables. Output is escaped HTML; it never
// loads anything. Precision is not the point: the answer is readable without it.

const KEYWORDS = new Set(
  (
    "abstract as async await break case catch class const continue def default defer delete do elif else enum export " +
    "extends false final finally fn for from func function go if impl implements import in instanceof interface is " +
    "lambda let match mod mut namespace new nil none null package pass private protected pub public raise return " +
    "self static struct super switch this throw throws true try type typeof union unsafe use using var void while " +
    "with yield None True False auto bool char double float int long short signed unsigned template typename virtual"
  ).split(" "),
);

/** Languages whose comments start with "#". */
const HASH_COMMENTS = new Set(["py", "python", "sh", "bash", "shell", "zsh", "yaml", "yml", "toml", "rb", "ruby", "perl", "r", "cmake", "dockerfile", "make", "makefile"]);

// One alternative per kind, tried left to right at each position.
const C_LIKE = /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`(?:[^`\\]|\\.)*`?)|(\b\d[\d_]*(?:\.\d+)?(?:e[+-]?\d+)?\b|\b0x[\da-f]+\b)|([A-Za-z_$][\w$]*)/gi;
const HASH = /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)|(\b\d[\d_]*(?:\.\d+)?\b)|([A-Za-z_$][\w$]*)/gi;

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `code` as escaped HTML with <span class="hl-…"> around the parts it recognises. */
export function highlight(code: string, language: string): string {
  const pattern = HASH_COMMENTS.has(language.toLowerCase()) ? HASH : C_LIKE;
  let html = "";
  let at = 0;
  for (const match of code.matchAll(pattern)) {
    const start = match.index ?? 0;
    html += escapeHtml(code.slice(at, start));
    const [text, comment, string, number, word] = match;
    const kind = comment ? "comment" : string ? "string" : number ? "number" : word && KEYWORDS.has(word) ? "keyword" : undefined;
    html += kind ? `<span class="hl-${kind}">${escapeHtml(text)}</span>` : escapeHtml(text);
    at = start + text.length;
  }
  return html + escapeHtml(code.slice(at));
}
