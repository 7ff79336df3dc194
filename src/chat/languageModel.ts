// The local model as a VS Code language model (contributes.languageModelChatProviders, VS Code ≥ 1.104): it
// appears in vscode.lm.selectChatModels and VS Code's chat model picker, and answers with the repository
// context like the sidebar chat. This project builds against @types/vscode 1.100, which predates the API, so
// its few shapes are declared here and the provider is registered only where the running VS Code has it.
import * as vscode from "vscode";
import type { ChatMessage } from "../engine/protocol";
import type { LoadResult } from "../engine/protocol";
import { estimateTokens } from "../workspace/segments";
import type { ChatController } from "./controller";

export const LANGUAGE_MODEL_VENDOR = "repo-llama";
const MAX_OUTPUT_TOKENS = 2048;

interface ChatInformation {
  readonly id: string;
  readonly name: string;
  readonly family: string;
  readonly version: string;
  readonly maxInputTokens: number;
  readonly maxOutputTokens: number;
  readonly tooltip?: string;
  readonly detail?: string;
  readonly capabilities: Record<string, never>;
}

/** LanguageModelChatRequestMessage: role 1 is the user, 2 the assistant; text arrives as LanguageModelTextPart. */
interface RequestMessage {
  readonly role: number;
  readonly content: readonly unknown[];
}

interface ChatProvider {
  readonly onDidChangeLanguageModelChatInformation: vscode.Event<void>;
  provideLanguageModelChatInformation(options: unknown, token: vscode.CancellationToken): ChatInformation[];
  provideLanguageModelChatResponse(
    model: ChatInformation,
    messages: readonly RequestMessage[],
    options: unknown,
    progress: vscode.Progress<unknown>,
    token: vscode.CancellationToken,
  ): Thenable<void>;
  provideTokenCount(model: ChatInformation, text: string | RequestMessage, token: vscode.CancellationToken): Thenable<number>;
}

type LanguageModelApi = typeof vscode.lm & {
  registerLanguageModelChatProvider?(vendor: string, provider: ChatProvider): vscode.Disposable;
};

export interface RegisteredLanguageModel extends vscode.Disposable {
  /** The engine loaded another model (or none): VS Code asks for the list again. */
  modelChanged(): void;
}

/** Registers the provider; undefined where this VS Code has no languageModelChatProviders API. */
export function registerLanguageModel(chat: ChatController, model: () => LoadResult | undefined): RegisteredLanguageModel | undefined {
  const lm = vscode.lm as LanguageModelApi;
  if (typeof lm.registerLanguageModelChatProvider !== "function") return undefined;
  const changed = new vscode.EventEmitter<void>();
  const provider: ChatProvider = {
    onDidChangeLanguageModelChatInformation: changed.event,
    provideLanguageModelChatInformation: () => {
      const loaded = model();
      if (!loaded) return [];
      return [
        {
          id: `${LANGUAGE_MODEL_VENDOR}-${loaded.model.digest.slice(0, 12)}`,
          name: `Repo Llama: ${loaded.model.name}`,
          family: "llama",
          version: loaded.model.digest.slice(0, 12),
          maxInputTokens: loaded.contextTokens,
          maxOutputTokens: MAX_OUTPUT_TOKENS,
          tooltip: "A local Llama-3 that has read this workspace: every request is answered with the repository context.",
          detail: `${loaded.model.quantization}, local`,
          capabilities: {},
        },
      ];
    },
    provideLanguageModelChatResponse: async (_model, messages, _options, progress, token) => {
      const outcome = await chat.complete(messages.map(toChatMessage), (text) => progress.report(new vscode.LanguageModelTextPart(text)), token);
      if (outcome.stopReason === "cancelled" && !token.isCancellationRequested) throw new Error("The answer was stopped.");
    },
    provideTokenCount: async (_model, text) => estimateTokens(typeof text === "string" ? text : textOf(text)),
  };
  const registration = lm.registerLanguageModelChatProvider(LANGUAGE_MODEL_VENDOR, provider);
  return {
    modelChanged: () => changed.fire(),
    dispose: () => {
      registration.dispose();
      changed.dispose();
    },
  };
}

function toChatMessage(message: RequestMessage): ChatMessage {
  return { role: message.role === vscode.LanguageModelChatMessageRole.Assistant ? "assistant" : "user", content: textOf(message) };
}

function textOf(message: RequestMessage): string {
  return message.content
    .filter((part): part is vscode.LanguageModelTextPart => part instanceof vscode.LanguageModelTextPart)
    .map((part) => part.value)
    .join("");
}
