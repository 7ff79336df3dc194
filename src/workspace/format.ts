// The prompt text (DESIGN §6), in the Llama-3 chat format. Every function here is pure and byte-stable:
// the same input always gives the same bytes, which is what lets a cached prefix be reused.
//
// The file count sits in the tail, not in the head's <repository> tag: the head is the first segment,
// so anything in it that changes when a file is added or removed would invalidate the whole cached
// context. The head changes only when the repository's name does.

export const SYSTEM_PROMPT = "You answer questions about the repository below. Cite files as path:line.";

/** System turn, opening of the user turn and the <repository> tag. */
export function formatHead(repositoryName: string): string {
  return (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
    `${SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n` +
    `<repository name="${escapeAttribute(repositoryName)}">\n`
  );
}

/**
 * "### path" then each line as "n | line", numbered from 1, every line ending in "\n". A final newline does
 * not make an extra empty line; "\r\n" endings are read as "\n".
 */
export function formatFile(path: string, text: string): string {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  let out = `### ${path.replace(/[\r\n]/g, " ")}\n`;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    out += `${i + 1} | ${line.endsWith("\r") ? line.slice(0, -1) : line}\n`;
  }
  return out;
}

/** Closes the repository and the user turn; the file count is here so that the head never depends on it. */
export function formatTail(fileCount: number): string {
  return `(${fileCount} ${fileCount === 1 ? "file" : "files"})\n</repository><|eot_id|>`;
}

/** A question as the next user turn, followed by the assistant header the model answers after. */
export function formatQuestion(question: string): string {
  return (
    `<|start_header_id|>user<|end_header_id|>\n\n${question}<|eot_id|>` +
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
  );
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/\n/g, " ");
}
