// The table of CLI commands; each lives in its own module under src/cli/.
import { indexCommand } from "./index";

export interface CliCommand {
  summary: string;
  run(args: string[]): Promise<number>;
}

export const commands: Record<string, CliCommand> = {};
commands.index = indexCommand;
