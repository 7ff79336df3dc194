// The sidebar chat view. The page is a static skeleton filled in by dist/media/chat.js from the state this
// provider posts; scripts run only with this render's nonce and assets come only from our own folders.
import { randomBytes } from "node:crypto";
import * as vscode from "vscode";
import { AnswerFailedError, type ChatController, userMessage } from "./controller";
import { CHAT_HINT, DOWNLOAD_MODEL, type FromWebview, isViewCommand, SELECT_MODEL, type ToWebview, type ViewState } from "./messages";

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly viewType = "repoLlama.chat";

  private view?: vscode.WebviewView;
  /** Notes posted while the view was closed or hidden, delivered when its page says it is ready. */
  private pendingNotices: string[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly currentState: () => ViewState,
    private readonly chat: ChatController,
  ) {}

  resolveWebviewView(webviewView: vscode.WebviewView): void {
    this.view = webviewView;
    const webview = webviewView.webview;
    webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, "dist", "media"), vscode.Uri.joinPath(this.extensionUri, "media")],
    };
    webview.html = this.render(webview);
    this.chat.attach({ post: (message) => this.post(message) });
    const received = webview.onDidReceiveMessage((message: unknown) => this.receive(message));
    webviewView.onDidDispose(() => {
      received.dispose();
      if (this.view === webviewView) {
        this.view = undefined;
        this.chat.attach(undefined);
      }
    });
  }

  /** Sends the current state; called whenever the index or the model changes. */
  refresh(): void {
    this.post({ type: "state", state: this.currentState() });
  }

  notify(markdown: string): void {
    if (!this.post({ type: "notice", markdown })) this.pendingNotices.push(markdown);
  }

  private receive(message: unknown): void {
    const m = message as Partial<FromWebview> | undefined;
    if (m?.type === "ready") {
      this.refresh();
      for (const markdown of this.pendingNotices.splice(0)) this.post({ type: "notice", markdown });
      this.chat.replay();
    } else if (m?.type === "run" && isViewCommand(m.command)) {
      void vscode.commands.executeCommand(m.command);
    } else if (m?.type === "ask" && typeof m.question === "string") {
      // A failed answer is shown in its entry; a notification would say the same twice.
      this.chat.ask(m.question).catch((error: unknown) => {
        if (!(error instanceof AnswerFailedError)) void vscode.window.showErrorMessage(`Repo Llama: ${userMessage(error)}`);
      });
    } else if (m?.type === "stop") {
      this.chat.stop();
    } else if (m?.type === "newChat") {
      this.chat.newChat();
    } else if (m?.type === "openCitation" && typeof m.path === "string" && Number.isInteger(m.line)) {
      void this.chat.openCitation(m.path, m.line as number);
    } else if (m?.type === "copy" && typeof m.text === "string") {
      void vscode.env.clipboard.writeText(m.text);
    }
  }

  /**
   * False when there is no page to post to. A hidden view has no page (its script state is dropped and
   * rebuilt from getState() when shown again), so messages to it would be lost.
   */
  private post(message: ToWebview): boolean {
    if (!this.view?.visible) return false;
    void this.view.webview.postMessage(message);
    return true;
  }

  private render(webview: vscode.Webview): string {
    const nonce = randomBytes(16).toString("base64");
    const asset = (...segments: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, ...segments));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
      `img-src ${webview.cspSource}`,
    ].join("; ");
    return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${csp}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link rel="stylesheet" href="${asset("media", "chat.css")}">
  <title>Repo Llama</title>
</head>
<body>
  <section class="index" aria-labelledby="index-heading">
    <h2 id="index-heading">Workspace</h2>
    <div id="index-summary" role="status">
      <p id="index-totals">Waiting for the workspace index…</p>
      <p id="index-skipped"></p>
    </div>
    <button id="reindex" type="button" class="secondary">Reindex</button>
  </section>
  <section id="model" aria-labelledby="model-heading" hidden>
    <h2 id="model-heading">Model</h2>
    <p id="model-summary"></p>
  </section>
  <section id="no-model" class="notice" hidden>
    <p id="no-model-text"></p>
    <div class="actions">
      <button id="select-model" type="button">${SELECT_MODEL}</button>
      <button id="download-model" type="button" class="secondary">${DOWNLOAD_MODEL}</button>
    </div>
  </section>
  <section id="context" class="context" aria-label="Repository context">
    <p id="context-summary" class="hint">The repository context is prepared with the first question.</p>
  </section>
  <div id="notes" class="notes"></div>
  <div id="answer" class="answer" role="log" aria-live="polite" aria-label="Answers"></div>
  <div id="prefill" class="prefill" role="status" hidden>
    <progress id="prefill-bar" max="100" value="0" aria-label="Context prefill"></progress>
    <span id="prefill-text"></span>
    <button id="prefill-cancel" type="button" class="secondary">Cancel</button>
  </div>
  <form id="chat-form" class="chat-form">
    <label for="chat-input" class="visually-hidden">Question about this workspace</label>
    <textarea id="chat-input" rows="3" placeholder="Ask about this workspace" aria-describedby="chat-hint chat-keys" disabled></textarea>
    <p id="chat-hint" class="hint"></p>
    <p id="chat-keys" class="hint">${CHAT_HINT}</p>
    <div class="actions">
      <button id="ask" type="submit" disabled>Ask</button>
      <button id="stop" type="button" class="secondary" hidden>Stop</button>
      <button id="new-chat" type="button" class="secondary">New Chat</button>
    </div>
  </form>
  <script nonce="${nonce}" src="${asset("dist", "media", "chat.js")}"></script>
</body>
</html>`;
  }
}
