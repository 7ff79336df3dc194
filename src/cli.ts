#!/usr/bin/env node
// repo-llama: the same pipeline as the extension, from a terminal.
import { commands } from "./cli/commands";

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    const width = Math.max(...Object.keys(commands).map((n) => n.length));
    const list = Object.entries(commands)
      .map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`)
      .join("\n");
    process.stderr.write(`usage: repo-llama <command> [options]\n\n${list}\n`);
    return name === undefined || name === "help" || name === "--help" ? 0 : 2;
  }
  return command.run(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`repo-llama: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
