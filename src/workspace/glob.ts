// VS Code style glob patterns (files.exclude, search.exclude, repoLlama.index.include/exclude), matched
// against workspace-relative paths with forward slashes. Unlike .gitignore lines, a glob is matched against
// the whole relative path: "*.log" means a .log file at the top level, "**/*.log" one at any depth.

/** A compiled list of globs; `matches` is true when any of them matches the path. */
export class GlobSet {
  private readonly regexes: RegExp[];

  constructor(patterns: readonly string[]) {
    this.regexes = patterns.map((p) => p.trim()).filter((p) => p.length > 0).map(globToRegExp);
  }

  get isEmpty(): boolean {
    return this.regexes.length === 0;
  }

  matches(relativePath: string): boolean {
    for (const regex of this.regexes) if (regex.test(relativePath)) return true;
    return false;
  }
}

/**
 * `**` spans any number of path segments (including none), `*` and `?` stay inside one segment,
 * `{a,b}` is an alternation, `[abc]` / `[!abc]` a character class. A leading "./" or "/" is ignored.
 */
export function globToRegExp(glob: string): RegExp {
  let pattern = glob.replace(/\\/g, "/").replace(/^\.?\/+/, "");
  if (pattern.endsWith("/")) pattern = pattern.slice(0, -1);
  let source = "";
  let braceDepth = 0;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === "*" && pattern[i + 1] === "*") {
      const atStart = i === 0 || pattern[i - 1] === "/";
      const next = pattern[i + 2];
      if (atStart && next === "/") {
        source += "(?:[^/]*/)*"; // "**/" : zero or more whole segments
        i += 3;
      } else if (atStart && next === undefined) {
        // "a/**" also matches "a" itself, so a folder glob excludes the folder as well as what is in it.
        if (source.endsWith("/")) source = `${source.slice(0, -1)}(?:/.*)?`;
        else source += ".*";
        i += 2;
      } else {
        source += ".*";
        i += 2;
      }
      continue;
    }
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "{") {
      braceDepth++;
      source += "(?:";
    } else if (c === "}" && braceDepth > 0) {
      braceDepth--;
      source += ")";
    } else if (c === "," && braceDepth > 0) source += "|";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end === -1) source += "\\[";
      else {
        let body = pattern.slice(i + 1, end);
        const negated = body.startsWith("!") || body.startsWith("^");
        if (negated) body = body.slice(1);
        source += `[${negated ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
        i = end + 1;
        continue;
      }
    } else source += c.replace(/[.+^$()|\\\]]/g, "\\$&");
    i++;
  }
  while (braceDepth-- > 0) source += ")";
  return new RegExp(`^${source}$`);
}
