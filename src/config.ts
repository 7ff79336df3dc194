// Typed access to the repoLlama.* settings. Defaults live in package.json only: VS Code fills them in, so a
// missing value means the manifest and this file disagree, which is reported instead of guessed.
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import type { IndexOptions } from "./workspace/types";

export type Device = "auto" | "cpu" | "cuda";
export type KvBudget = "50%" | "25%" | "12.5%" | "full";

export interface KvSettings {
  budget: KvBudget;
  topP: number;
  sinkTokens: number;
  recentTokens: number;
  /** Most tokens the cache holds; 0: all (past it the least-attended are evicted). */
  maxTokensHeld: number;
}

export interface RepoLlamaConfig {
  /** Absolute path with "~" expanded, or "" when no model is set. */
  modelPath: string;
  device: Device;
  threads: number;
  contextBudgetTokens: number;
  kv: KvSettings;
  cacheMaxDiskGB: number;
  index: { maxFileKB: number; include: string[]; exclude: string[] };
  downloadUrl: string;
}

const section = "repoLlama";

function setting<T>(config: vscode.WorkspaceConfiguration, key: string): T {
  const value = config.get<T>(key);
  if (value === undefined) {
    throw new Error(`The setting ${section}.${key} has no value; the extension's package.json must declare its default.`);
  }
  return value;
}

export function readConfig(scope?: vscode.ConfigurationScope): RepoLlamaConfig {
  const config = vscode.workspace.getConfiguration(section, scope);
  return {
    modelPath: expandHome(setting<string>(config, "modelPath").trim()),
    device: setting<Device>(config, "device"),
    threads: setting<number>(config, "threads"),
    contextBudgetTokens: setting<number>(config, "contextBudgetTokens"),
    kv: {
      budget: setting<KvBudget>(config, "kv.budget"),
      topP: setting<number>(config, "kv.topP"),
      sinkTokens: setting<number>(config, "kv.sinkTokens"),
      recentTokens: setting<number>(config, "kv.recentTokens"),
      maxTokensHeld: setting<number>(config, "kv.maxTokensHeld"),
    },
    cacheMaxDiskGB: setting<number>(config, "cache.maxDiskGB"),
    index: {
      maxFileKB: setting<number>(config, "index.maxFileKB"),
      include: setting<string[]>(config, "index.include"),
      exclude: setting<string[]>(config, "index.exclude"),
    },
    downloadUrl: setting<string>(config, "model.downloadUrl"),
  };
}

/** Writes repoLlama.modelPath for the user (global target): a model file belongs to the machine, not a workspace. */
export async function setModelPath(modelPath: string): Promise<void> {
  await vscode.workspace.getConfiguration(section).update("modelPath", modelPath, vscode.ConfigurationTarget.Global);
}

/** The indexer options for one workspace folder: our own settings plus VS Code's enabled exclude globs. */
export function indexOptionsFor(folder: vscode.WorkspaceFolder): Omit<IndexOptions, "isCancelled"> {
  const own = readConfig(folder.uri).index;
  const filesExclude = vscode.workspace.getConfiguration("files", folder.uri).get<Record<string, unknown>>("exclude");
  const searchExclude = vscode.workspace.getConfiguration("search", folder.uri).get<Record<string, unknown>>("exclude");
  const exclude = [...new Set([...enabledGlobs(filesExclude), ...enabledGlobs(searchExclude), ...own.exclude])];
  return { maxFileKB: own.maxFileKB, include: own.include, exclude, name: folder.name };
}

/**
 * The patterns switched on in a files.exclude-style object. Entries with a `when` clause
 * (e.g. hide *.js next to a *.ts) depend on sibling files, which the indexer's glob list cannot express,
 * so they are left to the indexer's own rules rather than applied too broadly.
 */
export function enabledGlobs(setting: Record<string, unknown> | undefined): string[] {
  return Object.entries(setting ?? {})
    .filter(([, enabled]) => enabled === true)
    .map(([glob]) => glob);
}

/** Settings whose change invalidates the workspace index. */
export function affectsIndex(event: vscode.ConfigurationChangeEvent): boolean {
  return ["repoLlama.index", "files.exclude", "search.exclude"].some((key) => event.affectsConfiguration(key));
}

export function affectsModel(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration("repoLlama.modelPath");
}

/** Where the context snapshots of issue 5's snapshot store live. */
export function snapshotFolder(globalStorageUri: vscode.Uri): vscode.Uri {
  return vscode.Uri.joinPath(globalStorageUri, "snapshots");
}

function expandHome(value: string): string {
  if (value === "~") return os.homedir();
  if (value.startsWith("~/")) return path.join(os.homedir(), value.slice(2));
  return value;
}
