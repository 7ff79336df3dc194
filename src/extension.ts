// The composition root: creates the parts, wires their events and hands back the API. No logic lives here.
import * as vscode from "vscode";
import { type AnswerOutcome, ChatController } from "./chat/controller";
import type { ChatEntry, ContextInfo, PrefillProgress, ViewState } from "./chat/messages";
import { registerLanguageModel } from "./chat/languageModel";
import { ChatViewProvider } from "./chat/view";
import { useChatForExplain } from "./commands/explainRepository";
import { registerCommands } from "./commands/register";
import { WorkspaceIndex } from "./commands/reindex";
import { WorkspaceWatcher } from "./commands/workspaceWatcher";
import { affectsIndex, affectsModel, snapshotFolder } from "./config";
import type { EngineClient } from "./engine/client";
import { EngineHost } from "./engine/engineHost";
import { ModelSetting } from "./model/modelSetting";
import { EngineStatusItem } from "./status";
import type { IndexResult, IndexStats } from "./workspace/types";

/** What activate() returns to other extensions and to the integration tests. */
export interface RepoLlamaApi {
  /** The stats of the latest workspace index, waiting for a run in progress. */
  indexSummary(): Promise<IndexStats>;
  /** The latest workspace index itself (files and prompt segments), waiting for a run in progress. */
  indexResult(): Promise<IndexResult>;
  /** The engine sidecar's client (health, context/open, chat/ask). */
  engine: EngineClient;
  /** The sidebar chat: what the view's Ask, Stop, New Chat and citation links do. */
  chat: {
    /** Asks as the view does (the question joins the history); onToken hears the answer as it streams. */
    ask(question: string, onToken?: (text: string) => void): Promise<AnswerOutcome>;
    stop(): void;
    newChat(): void;
    history(): readonly ChatEntry[];
    /** The repository context as the view's indicator shows it (source "disk" when loaded from a snapshot). */
    context(): ContextInfo | undefined;
    /** The context prefill in progress as the view mirrors it (a background update after an edit included). */
    progress(): PrefillProgress | undefined;
    openCitation(path: string, line: number): Promise<vscode.TextEditor | undefined>;
  };
}

export async function activate(context: vscode.ExtensionContext): Promise<RepoLlamaApi> {
  try {
    return await start(context);
  } catch (error) {
    // VS Code does not show a notification when an extension fails to activate.
    const message = error instanceof Error ? error.message : String(error);
    void vscode.window.showErrorMessage(`Repo Llama failed to start: ${message}`);
    throw error;
  }
}

async function start(context: vscode.ExtensionContext): Promise<RepoLlamaApi> {
  const log = vscode.window.createOutputChannel("Repo Llama Engine", { log: true });
  const status = new EngineStatusItem();
  const index = new WorkspaceIndex(log);
  const model = new ModelSetting(log);
  const engine = new EngineHost(context.extensionUri, log, status, context.globalStorageUri.fsPath);
  const viewState = (): ViewState => ({ index: index.state, model: model.current });
  // The engine load for the model now configured; questions wait for it.
  let engineLoad: Promise<unknown> = Promise.resolve();
  const chat = new ChatController(context.workspaceState, index, model, engine, () => engineLoad, {
    folder: snapshotFolder(context.globalStorageUri),
    log,
  });
  const view = new ChatViewProvider(context.extensionUri, viewState, chat);
  // VS Code ≥ 1.104 also offers the local model in its own chat model picker.
  const languageModel = registerLanguageModel(chat, () => engine.client.model);
  if (languageModel) context.subscriptions.push(languageModel);
  const followModel = (load: Promise<unknown>) => {
    engineLoad = load;
    void load.then(() => languageModel?.modelChanged());
  };
  context.subscriptions.push(log, status, index, model, engine, chat, useChatForExplain(chat), new WorkspaceWatcher(index));

  context.subscriptions.push(
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewType, view),
    ...registerCommands({
      index,
      model,
      log,
      globalStorageUri: context.globalStorageUri,
      inspectModel: (modelPath) => engine.inspect(modelPath),
      notify: (markdown) => view.notify(markdown),
    }),
    index.onDidChange((state) => {
      view.refresh();
      // An edit (or a settings change) changed the index: the context follows in the background.
      if (state.kind === "ready") chat.refreshContext();
    }),
    model.onDidChange((state) => {
      view.refresh();
      followModel(engine.follow(state));
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (affectsIndex(event)) void index.start();
      if (affectsModel(event)) void model.refresh();
      else if (engine.affectsEngine(event)) followModel(engine.follow(model.current));
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => void index.start()),
  );

  void index.start();
  await model.refresh(); // fires onDidChange, which fills the status item and the view
  return {
    indexSummary: () => index.summary(),
    indexResult: () => index.result(),
    engine: engine.client,
    chat: {
      ask: (question, onToken) => chat.ask(question, onToken && { token: onToken }),
      stop: () => chat.stop(),
      newChat: () => chat.newChat(),
      history: () => chat.history,
      context: () => chat.context,
      progress: () => chat.progress,
      openCitation: (path, line) => chat.openCitation(path, line),
    },
  };
}
