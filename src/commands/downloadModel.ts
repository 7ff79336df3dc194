// "Download Model". The managed download (progress, resume, checksum, disk-space check) comes with the
// engine; until then this command confirms the URL and hands the download to the user's own tools, then
// points at "Select Model" for the downloaded file.
import * as vscode from "vscode";
import { SELECT_MODEL } from "../chat/messages";
import { readConfig } from "../config";
import { CommandIds } from "./ids";

export type DownloadOutcome = { kind: "handedOver"; url: string; curl: string } | { kind: "dismissed" };

export async function downloadModel(): Promise<DownloadOutcome> {
  const url = await vscode.window.showInputBox({
    title: "Download a Llama-3 model (GGUF)",
    prompt: "URL of the .gguf file. The default comes from the repoLlama.model.downloadUrl setting.",
    value: readConfig().downloadUrl,
    ignoreFocusOut: true,
    validateInput: (value) => urlProblem(value.trim()),
  });
  if (!url) return { kind: "dismissed" };
  const trimmed = url.trim();
  const fileName = decodeURIComponent(new URL(trimmed).pathname.split("/").pop() || "model.gguf");
  // -C - resumes a cut download, which matters for files of several GB.
  const curl = `curl -L -C - -o "${fileName}" "${trimmed}"`;
  const open = "Open in Browser";
  const copy = "Copy curl Command";
  void vscode.window
    .showInformationMessage(
      `Downloading inside VS Code arrives together with the engine. For now, download ${fileName} with your browser or with curl, then run "Select Model" and pick the file.`,
      open,
      copy,
      SELECT_MODEL,
    )
    .then(async (choice) => {
      if (choice === open) await vscode.env.openExternal(vscode.Uri.parse(trimmed));
      if (choice === copy) {
        await vscode.env.clipboard.writeText(curl);
        void vscode.window.showInformationMessage(`Copied: ${curl}`);
      }
      if (choice === SELECT_MODEL) await vscode.commands.executeCommand(CommandIds.selectModel);
    });
  return { kind: "handedOver", url: trimmed, curl };
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
