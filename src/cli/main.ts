#!/usr/bin/env node
/**
 * `lmx`: the command line. `serve` runs the gateway; every other command is a thin client of its HTTP API
 * (docs/cli.md lists them with their exit codes).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { registerBenchCommand } from "./bench.js";
import { registerAutotuneCommand } from "./commands/autotune.js";
import { registerChatCommand } from "./commands/chat.js";
import { registerConnectCommand } from "./commands/connect.js";
import { registerDoCommand } from "./commands/do.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerEnginesCommand } from "./commands/engines.js";
import { registerLoadCommands } from "./commands/load.js";
import { registerModelsCommand } from "./commands/models.js";
import { registerNodesCommand } from "./commands/nodes.js";
import { registerProbeCommand } from "./commands/probe.js";
import { registerPullCommand } from "./commands/pull.js";
import { registerServiceCommand } from "./commands/service.js";
import { registerSkillsCommand } from "./commands/skills.js";
import { registerAgentsCommand } from "./commands/agents.js";
import { registerStatusCommand } from "./commands/status.js";
import { EXIT } from "./exit.js";
import { registerServeCommand } from "./serve.js";

function packageVersion(): string {
  try {
    const file = fileURLToPath(new URL("../../../package.json", import.meta.url));
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

const program = new Command("lmx")
  .description("Opta LMX: local OpenAI-compatible LLM server")
  .version(packageVersion(), "-V, --version")
  // inherited by every command: a bad flag exits with the usage code below instead of commander's 1
  .exitOverride()
  .showSuggestionAfterError();

registerServeCommand(program);
registerStatusCommand(program);
registerModelsCommand(program);
registerNodesCommand(program);
registerLoadCommands(program);
registerPullCommand(program);
registerDoCommand(program);
registerChatCommand(program);
registerProbeCommand(program);
registerConnectCommand(program);
registerDoctorCommand(program);
registerEnginesCommand(program);
registerServiceCommand(program);
registerSkillsCommand(program);
registerAgentsCommand(program);
registerBenchCommand(program);
registerAutotuneCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  // commander has printed the message already; help and --version are not errors
  process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
}
