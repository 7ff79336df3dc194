// The only way text from outside (model output, file paths) reaches the page as markup: markdown-it with
// raw HTML switched off, so "<script>" or "<img onerror=…>" in the text is shown as text. markdown-it also
// refuses javascript:, vbscript: and data: links (except a few image types).
import MarkdownIt from "markdown-it";

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

export function renderMarkdown(target: HTMLElement, markdown: string): void {
  target.innerHTML = md.render(markdown);
}
