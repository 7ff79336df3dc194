// The API VS Code injects into webviews. acquireVsCodeApi() may be called only once per page.
interface VsCodeWebviewApi<State> {
  postMessage(message: unknown): void;
  getState(): State | undefined;
  setState(state: State): void;
}

declare function acquireVsCodeApi<State = unknown>(): VsCodeWebviewApi<State>;
