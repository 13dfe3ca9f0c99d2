/**
 * Builds the gateway's skill registry from configuration: the built-ins, command skills, Agent Skills folders and
 * the configured MCP servers' tools (src/skills/mcp-source.ts). Disabled (`skills.enabled: false`): an empty
 * registry, so every route answers and every name is 404.
 */
import type { Logger } from "pino";
import type { ServerConfig } from "../config/load.js";
import type { StateDatabase } from "../state/database.js";
import { SkillAuditLog } from "./audit.js";
import { BuiltinSource } from "./builtin/source.js";
import type { BuiltinSkill } from "./builtin/types.js";
import { CommandSource } from "./command.js";
import { FolderSource } from "./folders.js";
import { McpSkillSource } from "./mcp-source.js";
import { SkillRegistry, type SkillMetricsSink } from "./registry.js";

export interface SkillSetupDeps {
  storage: StateDatabase;
  metrics: SkillMetricsSink | null;
  log: Logger;
  /** count_tokens needs models: given by the gateway, which owns the scheduler. */
  countTokens?: BuiltinSkill;
}

export async function createSkillRegistry(config: ServerConfig, deps: SkillSetupDeps): Promise<SkillRegistry> {
  const skills = config.skills;
  const log = deps.log.child({ component: "skills" });
  const registry = new SkillRegistry({
    maxArgumentBytes: skills.max_argument_bytes,
    allowInLoop: new Set(skills.allow_in_loop),
    audit: new SkillAuditLog(deps.storage, skills.audit_keep),
    metrics: deps.metrics,
    log: (level, message, fields) => log[level](fields, message),
  });
  if (!skills.enabled) return registry;
  await registry.addSource(
    new BuiltinSource({
      allow: skills.builtins,
      timeoutMs: skills.timeout_ms,
      fileRoots: skills.files.roots,
      maxFileBytes: skills.files.max_bytes,
      ...(deps.countTokens ? { countTokens: deps.countTokens } : {}),
    }),
  );
  if (skills.commands.length > 0) await registry.addSource(new CommandSource(skills.commands, config.state_dir));
  for (const folder of skills.folders) await registry.addSource(new FolderSource(folder, skills.folder_defaults));
  // each starts its server in the background: its tools join the registry once it has answered tools/list
  for (const server of skills.mcp_servers) {
    await registry.addSource(new McpSkillSource(server, { defaultTimeoutMs: skills.timeout_ms, log: log.child({ mcp_server: server.name }) }));
  }
  return registry;
}
