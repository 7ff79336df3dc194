// The chat view's script. It renders what the extension posts and keeps it in the webview state, so the
// view shows the last known state at once when it is opened again.
import { type FromWebview, type IndexState, type ToWebview, type ViewState, chatDisabledHint, modelProblemMessage } from "../src/chat/messages";
import { CommandIds } from "../src/commands/ids";
import { formatBytes, formatIndexTotals, formatSkipped } from "../src/chat/summary";
import { renderMarkdown } from "./markdown";

interface PersistedState {
  view?: ViewState;
  /** Markdown notes shown in the answer area, oldest first. */
  notices: string[];
  draft: string;
}

/** Enough history to stay useful without growing the persisted state without bound. */
const MAX_NOTICES = 20;

const vscode = acquireVsCodeApi<PersistedState>();
let persisted: PersistedState = vscode.getState() ?? { notices: [], draft: "" };

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
const answer = element("answer");
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
  askButton.disabled = hint !== undefined;
  chatHint.textContent = hint ?? "";
}

function fileName(filePath: string): string {
  return filePath.split(/[\\/]/).pop() ?? filePath;
}

function renderNotices(): void {
  answer.replaceChildren(
    ...persisted.notices.map((markdown) => {
      const note = document.createElement("div");
      note.className = "note";
      renderMarkdown(note, markdown);
      return note;
    }),
  );
}

window.addEventListener("message", (event: MessageEvent<ToWebview>) => {
  const message = event.data;
  if (message.type === "state") {
    persisted.view = message.state;
    renderView(message.state);
  } else if (message.type === "notice") {
    persisted.notices = [...persisted.notices, message.markdown].slice(-MAX_NOTICES);
    renderNotices();
  }
  save();
});

element("select-model").addEventListener("click", () => send({ type: "run", command: CommandIds.selectModel }));
element("download-model").addEventListener("click", () => send({ type: "run", command: CommandIds.downloadModel }));
element("reindex").addEventListener("click", () => send({ type: "run", command: CommandIds.reindex }));
chatInput.addEventListener("input", () => {
  persisted = { ...persisted, draft: chatInput.value };
  save();
});
// Asking arrives with the engine; until then the form is disabled and submitting must not reload the page.
chatForm.addEventListener("submit", (event) => event.preventDefault());

chatInput.value = persisted.draft;
if (persisted.view) renderView(persisted.view);
renderNotices();
send({ type: "ready" });
