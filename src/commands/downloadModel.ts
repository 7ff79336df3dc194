// "Download Model": confirms the URL (repoLlama.model.downloadUrl by default), downloads the file into the
// extension's models folder with a progress notification (bytes, speed, time left, Cancel), resumes an
// earlier interrupted download, verifies the sha256 when one is known, and then selects the model.
import * as vscode from "vscode";
import { formatBytes } from "../chat/summary";
import { readConfig, setModelPath } from "../config";
import { DownloadError, type DownloadProblem, type DownloadProgress, downloadFile, fileNameOf } from "../model/download";

export type DownloadOutcome =
  | { kind: "downloaded"; path: string; bytes: number; sha256?: string; resumedFrom: number }
  | { kind: "failed"; problem: DownloadProblem; message: string }
  | { kind: "dismissed" };

/** Where downloaded models are kept: per user, outside every workspace. */
export function modelsFolder(globalStorageUri: vscode.Uri): vscode.Uri {
  return vscode.Uri.joinPath(globalStorageUri, "models");
}

export async function downloadModel(globalStorageUri: vscode.Uri): Promise<DownloadOutcome> {
  const url = await vscode.window.showInputBox({
    title: "Download a Llama-3 model (GGUF)",
    prompt: "URL of the .gguf file. The default comes from the repoLlama.model.downloadUrl setting.",
    value: readConfig().downloadUrl,
    ignoreFocusOut: true,
    validateInput: (value) => urlProblem(value.trim()),
  });
  if (!url) return { kind: "dismissed" };
  const trimmed = url.trim();
  const folder = modelsFolder(globalStorageUri).fsPath;
  const fileName = fileNameOf(trimmed);
  const sha256 = vscode.workspace.getConfiguration("repoLlama").get<string>("model.sha256") || undefined;

  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Downloading ${fileName}`, cancellable: true },
      async (progress, token) => {
        const controller = new AbortController();
        const subscription = token.onCancellationRequested(() => controller.abort());
        let shownFraction = 0;
        try {
          return await downloadFile({
            url: trimmed,
            folder,
            fileName,
            sha256,
            signal: controller.signal,
            onProgress: (p) => {
              // withProgress adds increments: pass the change since the last report.
              const fraction = p.totalBytes > 0 ? p.receivedBytes / p.totalBytes : 0;
              progress.report({ message: describeProgress(p), increment: Math.max(0, (fraction - shownFraction) * 100) });
              shownFraction = fraction;
            },
          });
        } finally {
          subscription.dispose();
        }
      },
    );
    await setModelPath(result.path);
    const checked = result.sha256 ? `sha256 verified` : "no checksum was published, so it is not verified";
    void vscode.window.showInformationMessage(
      `Downloaded ${fileName} (${formatBytes(result.bytes)}, ${checked}) to ${folder} and selected it as the model.`,
    );
    return { kind: "downloaded", path: result.path, bytes: result.bytes, sha256: result.sha256, resumedFrom: result.resumedFrom };
  } catch (error) {
    if (!(error instanceof DownloadError)) throw error;
    if (error.problem === "cancelled") void vscode.window.showInformationMessage(error.message);
    else void vscode.window.showErrorMessage(error.message);
    return { kind: "failed", problem: error.problem, message: error.message };
  }
}

/** "1.2 GB of 4.6 GB · 38.0 MB/s · 1 min 32 s left". */
export function describeProgress(p: DownloadProgress): string {
  const parts = [p.totalBytes > 0 ? `${formatBytes(p.receivedBytes)} of ${formatBytes(p.totalBytes)}` : formatBytes(p.receivedBytes)];
  if (p.bytesPerSecond > 0) parts.push(`${formatBytes(p.bytesPerSecond)}/s`);
  if (p.etaSeconds !== undefined) parts.push(`${formatDuration(p.etaSeconds)} left`);
  return parts.join(" · ");
}

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function urlProblem(value: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return "Enter a full URL, starting with https://";
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return "Only http:// and https:// URLs can be downloaded.";
  return undefined;
}
