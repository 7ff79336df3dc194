// The table of CLI commands; each lives in its own module under src/cli/.
import { askCommand } from "./ask";
import { evalCommand } from "./eval";
import { generateCommand } from "./generate";
import { indexCommand } from "./index";
import { statsCommand } from "./stats";
import { tokenizeCommand } from "./tokenize";

export interface CliCommand {
  summary: string;
  run(args: string[]): Promise<number>;
}

export const commands: Record<string, CliCommand> = {};
commands.index = indexCommand;
commands.tokenize = tokenizeCommand;
commands.eval = evalCommand;
commands.generate = generateCommand;
commands.stats = statsCommand;
commands.ask = askCommand;
