// Command identifiers as contributed in package.json. Browser-safe: the webview imports them too.
export const CommandIds = {
  explainRepository: "repoLlama.explainRepository",
  reindex: "repoLlama.reindex",
  selectModel: "repoLlama.selectModel",
  downloadModel: "repoLlama.downloadModel",
  clearCache: "repoLlama.clearCache",
  showLog: "repoLlama.showLog",
} as const;

export type CommandId = (typeof CommandIds)[keyof typeof CommandIds];
