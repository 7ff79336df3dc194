// The only way text from outside (model output, file paths) reaches the page as markup: markdown-it with
// raw HTML switched off, so "<script>" or "<img onerror=…>" in the text is shown as text. markdown-it also
// refuses javascript:, vbscript: and data: links (except a few image types). Code blocks go through our own
// highlighter, which escapes everything it returns.
import MarkdownIt from "markdown-it";
import { highlight } from "./highlight";

const md = new MarkdownIt({
  html: false,
  linkify: true,
  typographer: false,
  highlight: (code, language) => highlight(code, language),
});

/** The HTML for `markdown`: safe to assign to innerHTML. */
export function markdownToHtml(markdown: string): string {
  return md.render(markdown);
}

export function renderMarkdown(target: HTMLElement, markdown: string): void {
  target.innerHTML = markdownToHtml(markdown);
}
