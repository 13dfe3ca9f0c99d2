/** Command skills from configuration (`skills.commands`): each a fixed argv run as in process.ts. */
import type { CommandSkillConfig } from "./config.js";
import { runSkillProcess } from "./process.js";
import type { Skill, SkillSource } from "./types.js";

export class CommandSource implements SkillSource {
  readonly kind = "command" as const;
  readonly name = "commands";

  constructor(
    private readonly commands: readonly CommandSkillConfig[],
    private readonly defaultCwd: string,
  ) {}

  async list(): Promise<Skill[]> {
    return this.commands.map((command) => ({
      name: command.name,
      description: command.description,
      parameters: command.parameters,
      outputSchema: command.output_schema,
      timeoutMs: command.timeout_ms,
      source: "command",
      sourceName: command.name,
      allowInLoop: false,
      run: (args, context) =>
        runSkillProcess(
          {
            name: command.name,
            argv: command.command,
            cwd: command.cwd ?? this.defaultCwd,
            envAllow: command.env_allow,
            env: command.env,
            maxOutputBytes: command.max_output_bytes,
          },
          args,
          context.signal,
        ),
    }));
  }

  health(): { ok: boolean; detail?: string } {
    return { ok: true };
  }
}
