// The engine's health in the status bar: one item, theme colours only, and a tooltip that says what the
// state means and links the command that helps.
import * as vscode from "vscode";
import { DOWNLOAD_MODEL, ENGINE_STARTS_MESSAGE, type ModelState, modelProblemMessage, SELECT_MODEL } from "./chat/messages";
import { CommandIds } from "./commands/ids";

export type EngineHealth = "starting" | "ok" | "busy" | "error" | "stopped";

const looks: Record<EngineHealth, { icon: string; background?: string; foreground?: string }> = {
  starting: { icon: "$(loading~spin)" },
  ok: { icon: "$(check)" },
  busy: { icon: "$(sync~spin)" },
  error: { icon: "$(error)", background: "statusBarItem.errorBackground", foreground: "statusBarItem.errorForeground" },
  stopped: {
    icon: "$(circle-slash)",
    background: "statusBarItem.warningBackground",
    foreground: "statusBarItem.warningForeground",
  },
};

export interface HealthReport {
  health: EngineHealth;
  /** Plain text for the tooltip (escaped: it may contain file paths). */
  detail: string;
  /** Command links under the detail; the first one also runs when the item is clicked. */
  actions: { title: string; command: string }[];
}

export class EngineStatusItem implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("repoLlama.engine", vscode.StatusBarAlignment.Left, 0);

  constructor() {
    this.item.name = "Repo Llama Engine";
  }

  show(report: HealthReport): void {
    const look = looks[report.health];
    this.item.text = report.health === "ok" ? `${look.icon} Repo Llama` : `${look.icon} Repo Llama: ${report.health}`;
    this.item.backgroundColor = look.background ? new vscode.ThemeColor(look.background) : undefined;
    this.item.color = look.foreground ? new vscode.ThemeColor(look.foreground) : undefined;
    const tooltip = new vscode.MarkdownString(`**Repo Llama engine: ${report.health}**\n\n`);
    tooltip.appendText(report.detail);
    tooltip.appendMarkdown(`\n\n${report.actions.map((a) => `[${a.title}](command:${a.command})`).join(" · ")}`);
    tooltip.isTrusted = { enabledCommands: report.actions.map((a) => a.command) };
    this.item.tooltip = tooltip;
    this.item.command = report.actions[0]?.command;
    this.item.accessibilityInformation = { label: `Repo Llama engine ${report.health}`, role: "button" };
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}

/** The report while no engine runs: it says why and links the next step. */
export function stoppedEngineReport(model: ModelState): HealthReport {
  const problem = modelProblemMessage(model);
  if (problem) {
    return {
      health: "stopped",
      detail: `Engine not started. ${problem}`,
      actions: [
        { title: SELECT_MODEL, command: CommandIds.selectModel },
        { title: DOWNLOAD_MODEL, command: CommandIds.downloadModel },
      ],
    };
  }
  return {
    health: "stopped",
    detail: `Engine not started. ${ENGINE_STARTS_MESSAGE}`,
    actions: [{ title: "Show Engine Log", command: CommandIds.showLog }],
  };
}

/** The report while the engine sidecar runs (or failed): its own words, and the commands that help. */
export function engineReport(health: EngineHealth, detail: string): HealthReport {
  const showLog = { title: "Show Engine Log", command: CommandIds.showLog };
  const actions = health === "error" ? [showLog, { title: SELECT_MODEL, command: CommandIds.selectModel }] : [showLog];
  return { health, detail, actions };
}
