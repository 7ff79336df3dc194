// Human-readable index figures, shared by the chat view, notifications and the log so that every place
// shows the same words. Browser-safe (no Node or vscode imports): media/chat.ts bundles it.
import type { IndexStats, SkipReason } from "../workspace/types";

/** [one, many] so that counts read naturally: "1 lock file", "3 lock files". */
const skipLabels: Record<SkipReason, [string, string]> = {
  ignored: ["ignored", "ignored"],
  binary: ["binary", "binary"],
  tooLarge: ["too large", "too large"],
  lockFile: ["lock file", "lock files"],
  minified: ["minified", "minified"],
  secret: ["secret-looking", "secret-looking"],
  unreadable: ["unreadable", "unreadable"],
  symlinkLoop: ["symlink loop", "symlink loops"],
  notIncluded: ["not included", "not included"],
};

/** "1,234 B", "1.2 KB", "3.4 MB", "1.1 GB" (binary multiples, as VS Code shows file sizes). */
export function formatBytes(bytes: number): string {
  const units = ["KB", "MB", "GB", "TB"];
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** "~850 tokens", "~3.4k tokens", "~340k tokens", "~1.2M tokens". */
export function formatTokens(tokens: number): string {
  if (tokens < 1000) return `~${tokens} tokens`;
  if (tokens < 10_000) return `~${(tokens / 1000).toFixed(1)}k tokens`;
  if (tokens < 1_000_000) return `~${Math.round(tokens / 1000)}k tokens`;
  return `~${(tokens / 1_000_000).toFixed(1)}M tokens`;
}

/** "123 files · 1.2 MB · ~340k tokens" */
export function formatIndexTotals(stats: IndexStats): string {
  const files = `${stats.files} ${stats.files === 1 ? "file" : "files"}`;
  return `${files} · ${formatBytes(stats.bytes)} · ${formatTokens(stats.estimatedTokens)}`;
}

/** "Skipped 12: 8 ignored, 3 binary, 1 too large" (largest first), or "Nothing skipped". */
export function formatSkipped(skipped: IndexStats["skipped"]): string {
  const entries = (Object.entries(skipped) as [SkipReason, number | undefined][])
    .filter((entry): entry is [SkipReason, number] => (entry[1] ?? 0) > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length === 0) return "Nothing skipped";
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const label = (reason: SkipReason, count: number) => skipLabels[reason]?.[count === 1 ? 0 : 1] ?? reason;
  return `Skipped ${total}: ${entries.map(([reason, count]) => `${count} ${label(reason, count)}`).join(", ")}`;
}
