// `path:line` and `path:line-line` citations in a model's answer. Finding them is pure text work, shared by
// the extension (which checks each path against the workspace index) and the webview (which turns the
// checked ones into links). Browser-safe: no Node or vscode imports.

export interface Citation {
  /** Offsets of the whole citation in the text it was found in. */
  start: number;
  end: number;
  /** Workspace-relative, forward slashes, without a leading "./". */
  path: string;
  /** 1-based. */
  line: number;
  /** Last line of a `path:12-20` range. */
  endLine?: number;
}

// A path is either something with a folder (a/b, a/b.ts) or a file name with an extension (README.md), so
// that prose such as "note:3" or a time "10:30" is not taken for a citation. The look-behind keeps URLs
// (http://host:8080) and longer paths from matching in the middle.
const CITATION =
  /(?<![\w/.:@~+-])(?:\.\/)?((?:[\w@~+-][\w.@~+-]*\/)+[\w.@~+-]*[\w@~+-]|[\w@~+-][\w.@~+-]*\.[A-Za-z0-9]+):(\d{1,7})(?:-(\d{1,7}))?(?![\w])/g;

export function findCitations(text: string): Citation[] {
  const found: Citation[] = [];
  for (const match of text.matchAll(CITATION)) {
    const line = Number(match[2]);
    if (line < 1) continue;
    const endLine = match[3] === undefined ? undefined : Number(match[3]);
    const start = match.index ?? 0;
    found.push({
      start,
      end: start + match[0].length,
      path: match[1],
      line,
      ...(endLine !== undefined && endLine >= line ? { endLine } : {}),
    });
  }
  return found;
}

/** The distinct paths cited in `text` that `exists` accepts, in order of first mention. */
export function knownCitedPaths(text: string, exists: (path: string) => boolean): string[] {
  const paths = new Set<string>();
  for (const citation of findCitations(text)) {
    if (!paths.has(citation.path) && exists(citation.path)) paths.add(citation.path);
  }
  return [...paths];
}
