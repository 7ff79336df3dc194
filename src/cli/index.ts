// repo-llama index [DIR]: indexes a folder the way the extension does and prints what went in and what was skipped.
import { parseArgs } from "node:util";
import { formatIndexTotals, formatSkipped } from "../chat/summary";
import { defaultIndexOptions, indexWorkspace } from "../workspace/index";
import type { IndexOptions } from "../workspace/types";
import type { CliCommand } from "./commands";

const usage = `usage: repo-llama index [DIR] [--json] [--max-file-kb N] [--include GLOB]... [--exclude GLOB]...

Indexes DIR (default: the current folder) with the same rules as the extension: .gitignore at every level,
.git/info/exclude, .repollamaignore, VS Code's default excludes (node_modules, …) and the skips for binary,
oversized, lock, minified and secret-looking files.

  --json            print {files, bytes, estimatedTokens, skipped: {reason: count}, ms}
  --max-file-kb N   skip files over N KiB (default ${defaultIndexOptions.maxFileKB})
  --include GLOB    only index files matching GLOB (repeatable)
  --exclude GLOB    also skip paths matching GLOB (repeatable)
`;

export const indexCommand: CliCommand = {
  summary: "index a folder and print its file, byte and token counts and what was skipped",
  async run(args) {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        options: {
          json: { type: "boolean", default: false },
          "max-file-kb": { type: "string" },
          include: { type: "string", multiple: true, default: [] },
          exclude: { type: "string", multiple: true, default: [] },
          help: { type: "boolean", short: "h", default: false },
        },
      });
    } catch (error) {
      process.stderr.write(`repo-llama index: ${(error as Error).message}\n\n${usage}`);
      return 2;
    }
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(usage);
      return 0;
    }
    if (positionals.length > 1) {
      process.stderr.write(`repo-llama index: one folder at a time (got ${positionals.length})\n\n${usage}`);
      return 2;
    }
    let maxFileKB = defaultIndexOptions.maxFileKB;
    if (values["max-file-kb"] !== undefined) {
      maxFileKB = Number(values["max-file-kb"]);
      if (!Number.isFinite(maxFileKB) || maxFileKB <= 0) {
        process.stderr.write(`repo-llama index: --max-file-kb needs a positive number of KiB, got "${values["max-file-kb"]}"\n`);
        return 2;
      }
    }
    const options: IndexOptions = {
      maxFileKB,
      include: values.include,
      exclude: [...defaultIndexOptions.exclude, ...values.exclude],
    };
    const { stats, root } = await indexWorkspace(positionals[0] ?? ".", options);
    if (values.json) {
      const { files, bytes, estimatedTokens, skipped, ms } = stats;
      process.stdout.write(`${JSON.stringify({ files, bytes, estimatedTokens, skipped, ms })}\n`);
    } else {
      process.stdout.write(`${root}\n${formatIndexTotals(stats)} in ${stats.ms} ms\n${formatSkipped(stats.skipped)}\n`);
    }
    return 0;
  },
};
