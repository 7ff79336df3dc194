// The chat view's script. It renders what the extension posts and keeps it in the webview state, so the
// view shows the last known state at once when it is opened again. The conversation itself lives in the
// extension (workspaceState); the copy here is only for showing it before the extension answers.
import { findCitations } from "../src/chat/citations";
import {
  type ChatEntry,
  type ContextInfo,
  chatDisabledHint,
  type FromWebview,
  formatAnswerStats,
  formatContextSource,
  formatDiskLoad,
  formatPrefillProgress,
  type IndexState,
  modelProblemMessage,
  type PrefillProgress,
  type ToWebview,
  type ViewState,
} from "../src/chat/messages";
import { CommandIds } from "../src/commands/ids";
import { formatBytes, formatIndexTotals, formatSkipped } from "../src/chat/summary";
import { renderMarkdown } from "./markdown";

interface PersistedState {
  view?: ViewState;
  /** Markdown notes shown above the conversation, oldest first. */
  notices: string[];
  draft: string;
  entries?: ChatEntry[];
}

/** Enough history to stay useful without growing the persisted state without bound. */
const MAX_NOTICES = 20;

const vscode = acquireVsCodeApi<PersistedState>();
let persisted: PersistedState = vscode.getState() ?? { notices: [], draft: "" };
let entries: ChatEntry[] = persisted.entries ?? [];

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`chat view: #${id} is missing from the page`);
  return found as T;
}

const indexTotals = element("index-totals");
const indexSkipped = element("index-skipped");
const modelSection = element("model");
const modelSummary = element("model-summary");
const noModel = element("no-model");
const noModelText = element("no-model-text");
const notes = element("notes");
const answer = element("answer");
const contextSummary = element("context-summary");
const prefill = element("prefill");
const prefillBar = element<HTMLProgressElement>("prefill-bar");
const prefillText = element("prefill-text");
const stopButton = element<HTMLButtonElement>("stop");
const newChatButton = element<HTMLButtonElement>("new-chat");
const chatForm = element<HTMLFormElement>("chat-form");
const chatInput = element<HTMLTextAreaElement>("chat-input");
const chatHint = element("chat-hint");
const askButton = element<HTMLButtonElement>("ask");

function send(message: FromWebview): void {
  vscode.postMessage(message);
}

function save(): void {
  vscode.setState(persisted);
}

function renderIndex(index: IndexState): void {
  indexSkipped.textContent = "";
  indexTotals.removeAttribute("title");
  switch (index.kind) {
    case "noFolder":
      indexTotals.textContent = "No folder is open. Open a folder to index it.";
      break;
    case "indexing":
      indexTotals.textContent = `Indexing ${index.folder}…`;
      break;
    case "ready":
      indexTotals.textContent = formatIndexTotals(index.stats);
      indexTotals.title = `${index.folder}, indexed in ${index.stats.ms} ms`;
      indexSkipped.textContent = formatSkipped(index.stats.skipped);
      break;
    case "cancelled":
      indexTotals.textContent = `Indexing ${index.folder} was cancelled. Run Reindex Workspace to index it again.`;
      break;
    case "failed":
      indexTotals.textContent = `Indexing ${index.folder} failed: ${index.message}`;
      break;
  }
}

function renderView(view: ViewState): void {
  renderIndex(view.index);
  const model = view.model;
  modelSection.hidden = model.kind !== "configured";
  if (model.kind === "configured") {
    modelSummary.textContent = `${fileName(model.path)} · GGUF v${model.ggufVersion} · ${formatBytes(model.bytes)}`;
    modelSummary.title = model.path;
  }
  const problem = modelProblemMessage(model);
  noModel.hidden = problem === undefined;
  noModelText.textContent = problem ?? "";
  const hint = chatDisabledHint(view.model);
  chatInput.disabled = hint !== undefined;
  chatHint.textContent = hint ?? "";
  renderControls();
}

function streaming(): ChatEntry | undefined {
  return entries.find((e) => e.status === "streaming");
}

/** Ask while a question can be asked, Stop while an answer streams. */
function renderControls(): void {
  const busy = streaming() !== undefined;
  askButton.disabled = chatInput.disabled || busy;
  stopButton.hidden = !busy;
  newChatButton.disabled = entries.length === 0;
}

function fileName(filePath: string): string {
  return filePath.split(/[\\/]/).pop() ?? filePath;
}

function renderNotices(): void {
  notes.replaceChildren(
    ...persisted.notices.map((markdown) => {
      const note = document.createElement("div");
      note.className = "note";
      renderMarkdown(note, markdown);
      return note;
    }),
  );
}

// ---------------------------------------------------------------------------------------------------
// The conversation

const STATUS_TEXT: Record<ChatEntry["status"], string> = {
  streaming: "Answering…",
  done: "",
  stopped: "Stopped.",
  failed: "Failed.",
};

function entryElement(entry: ChatEntry): HTMLElement {
  let article = document.getElementById(`entry-${entry.id}`);
  if (!article) {
    article = document.createElement("article");
    article.id = `entry-${entry.id}`;
    article.className = "entry";
    const question = document.createElement("div");
    question.className = "question";
    const body = document.createElement("div");
    body.className = "answer-text";
    const status = document.createElement("p");
    status.className = "entry-status";
    article.append(question, body, status);
    answer.append(article);
  }
  return article;
}

function renderEntry(entry: ChatEntry): void {
  const article = entryElement(entry);
  const [question, body, status] = article.children as unknown as [HTMLElement, HTMLElement, HTMLElement];
  question.textContent = entry.question;
  renderMarkdown(body, entry.answer);
  linkCitations(body, new Set(entry.citedPaths));
  addCopyButtons(body);
  article.setAttribute("aria-busy", String(entry.status === "streaming"));
  article.dataset.status = entry.status;
  status.textContent = entry.error
    ? `${STATUS_TEXT[entry.status]} ${entry.error}`
    : [STATUS_TEXT[entry.status], entry.stats && formatAnswerStats(entry.stats)].filter(Boolean).join(" ");
}

function renderEntries(): void {
  answer.replaceChildren();
  for (const entry of entries) renderEntry(entry);
  renderControls();
}

/** Turns `path:line` in text (code spans included, code blocks not) into links when the path is known. */
function linkCitations(root: HTMLElement, known: Set<string>): void {
  if (known.size === 0) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement?.closest("pre, a")) nodes.push(node as Text);
  }
  for (const node of nodes) {
    const text = node.data;
    const citations = findCitations(text).filter((c) => known.has(c.path));
    if (citations.length === 0) continue;
    const parts: Node[] = [];
    let at = 0;
    for (const c of citations) {
      parts.push(document.createTextNode(text.slice(at, c.start)));
      const link = document.createElement("a");
      link.href = "#";
      link.className = "citation";
      link.textContent = text.slice(c.start, c.end);
      link.dataset.path = c.path;
      link.dataset.line = String(c.line);
      link.title = `Open ${c.path} at line ${c.line}`;
      parts.push(link);
      at = c.end;
    }
    parts.push(document.createTextNode(text.slice(at)));
    node.replaceWith(...parts);
  }
}

function addCopyButtons(root: HTMLElement): void {
  for (const pre of Array.from(root.querySelectorAll("pre"))) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy secondary";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    button.dataset.copy = pre.querySelector("code")?.textContent ?? pre.textContent ?? "";
    pre.prepend(button);
  }
}

// Tokens arrive faster than the page needs to redraw: render the streaming entry once per frame.
let renderQueued = false;
function queueRender(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const entry = streaming();
    if (entry) renderEntry(entry);
  });
}

function upsert(entry: ChatEntry): void {
  const at = entries.findIndex((e) => e.id === entry.id);
  entries = at >= 0 ? entries.map((e) => (e.id === entry.id ? entry : e)) : [...entries, entry];
  renderEntry(entry);
  renderControls();
  if (at < 0) answer.lastElementChild?.scrollIntoView({ block: "start" });
}

function renderContext(info: ContextInfo): void {
  const memory = info.memory
    ? ` · KV fast ${formatBytes(info.memory.fastBytes)}, host ${formatBytes(info.memory.hostBytes)}, disk ${formatBytes(info.memory.diskBytes)}`
    : "";
  const loaded = info.source === "disk" && info.openSeconds !== undefined ? ` · ${formatDiskLoad(info.tokens, info.openSeconds)}` : "";
  const evicted = info.evictedTokens
    ? ` · ${(info.tokens - info.evictedTokens).toLocaleString("en-US")} of them held (repoLlama.kv.maxTokensHeld)`
    : "";
  contextSummary.textContent = `${formatContextSource(info)}${evicted}${loaded}${memory}`;
}

function renderProgress(progress: PrefillProgress | undefined): void {
  prefill.hidden = progress === undefined;
  if (!progress) return;
  prefillBar.value = Math.round((100 * progress.doneTokens) / Math.max(1, progress.totalTokens));
  prefillText.textContent = `Preparing the context: ${formatPrefillProgress(progress)}`;
}

function ask(): void {
  const question = chatInput.value.trim();
  if (!question || askButton.disabled) return;
  send({ type: "ask", question });
  chatInput.value = "";
  persisted = { ...persisted, draft: "" };
  save();
}

window.addEventListener("message", (event: MessageEvent<ToWebview>) => {
  const message = event.data;
  switch (message.type) {
    case "state":
      persisted.view = message.state;
      renderView(message.state);
      break;
    case "notice":
      persisted.notices = [...persisted.notices, message.markdown].slice(-MAX_NOTICES);
      renderNotices();
      break;
    case "history":
      entries = message.entries;
      renderEntries();
      break;
    case "entry":
      upsert(message.entry);
      break;
    case "token": {
      const entry = entries.find((e) => e.id === message.id);
      if (!entry) return;
      entry.answer += message.text;
      queueRender();
      // The webview state is saved when the answer ends, not for every token.
      return;
    }
    case "context":
      // Not persisted: after a reload the engine's context is a new one, which the extension reports.
      renderContext(message.info);
      return;
    case "progress":
      renderProgress(message.progress);
      return;
  }
  persisted.entries = entries;
  save();
});

answer.addEventListener("click", (event) => {
  const target = event.target as HTMLElement;
  const citation = target.closest<HTMLAnchorElement>("a.citation");
  if (citation) {
    event.preventDefault();
    send({ type: "openCitation", path: citation.dataset.path ?? "", line: Number(citation.dataset.line) });
    return;
  }
  const copy = target.closest<HTMLButtonElement>("button.copy");
  if (copy) {
    send({ type: "copy", text: copy.dataset.copy ?? "" });
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy"), 1500);
  }
});

element("select-model").addEventListener("click", () => send({ type: "run", command: CommandIds.selectModel }));
element("download-model").addEventListener("click", () => send({ type: "run", command: CommandIds.downloadModel }));
element("reindex").addEventListener("click", () => send({ type: "run", command: CommandIds.reindex }));
chatInput.addEventListener("input", () => {
  persisted = { ...persisted, draft: chatInput.value };
  save();
});
chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  ask();
});
chatInput.addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter keeps the textarea's own newline; an IME composition keeps its Enter.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ask();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && streaming()) send({ type: "stop" });
});
stopButton.addEventListener("click", () => send({ type: "stop" }));
element("prefill-cancel").addEventListener("click", () => send({ type: "stop" }));
newChatButton.addEventListener("click", () => {
  send({ type: "newChat" });
  chatInput.focus();
});

chatInput.value = persisted.draft;
if (persisted.view) renderView(persisted.view);
renderNotices();
renderEntries();
send({ type: "ready" });
