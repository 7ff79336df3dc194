// What the chat view does with a model's text before it reaches the page: markdown with raw HTML shown as
// text, and code blocks through the view's own highlighter (escaped, theme-coloured spans).
import * as assert from "node:assert/strict";
import { highlight } from "../../../media/highlight";
import { markdownToHtml } from "../../../media/markdown";

suite("Chat rendering", () => {
  test("HTML in an answer is escaped, never markup", () => {
    const html = markdownToHtml('Look: <img src=x onerror=alert(1)> and <script>alert("x")</script>\n\n[link](javascript:alert(1))');
    assert.ok(!/<img|<script/i.test(html), html);
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(html, /&lt;script&gt;/);
    assert.ok(!html.includes('href="javascript:'), `a javascript: link was kept: ${html}`);
  });

  test("code blocks are highlighted and escaped", () => {
    const html = markdownToHtml('```ts\nconst total = "<b>" + 42; // sum\n```');
    assert.match(html, /<pre><code class="language-ts">/);
    assert.match(html, /<span class="hl-keyword">const<\/span>/);
    assert.match(html, /<span class="hl-string">&#34;&#60;b&#62;&#34;<\/span>/);
    assert.match(html, /<span class="hl-number">42<\/span>/);
    assert.match(html, /<span class="hl-comment">\/\/ sum<\/span>/);
  });

  test("the highlighter follows the language's comment syntax and keeps every character", () => {
    const code = "# install\nif ready: pass  # 'done'\nx = 'a&b'";
    const html = highlight(code, "python");
    assert.match(html, /^<span class="hl-comment"># install<\/span>/);
    assert.match(html, /<span class="hl-keyword">if<\/span>/);
    assert.match(html, /<span class="hl-string">&#39;a&#38;b&#39;<\/span>/);
    const text = html.replace(/<[^>]+>/g, "").replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));
    assert.equal(text, code);
  });
});
