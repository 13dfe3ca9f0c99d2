/**
 * Skills: tools the server itself can run, listed, validated, executed and audited in one place, reachable as
 * `/v1/skills*`, as an MCP server at `/mcp`, and from the server-side tool loop. Sources (built-ins, command skills
 * from config, Agent Skills folders, imported MCP servers) all produce `Skill`s; the registry owns validation,
 * timeouts, the audit log and metrics, so no source can skip them.
 */
import type { JsonSchema } from "../chat/types.js";

export type SkillSourceKind = "builtin" | "command" | "folder" | "mcp";

export interface SkillDefinition {
  /** `[a-zA-Z0-9_.-]{1,128}`; skills imported from an MCP server are namespaced `server.tool`. */
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: JsonSchema;
  outputSchema?: JsonSchema | undefined;
  timeoutMs: number;
  source: SkillSourceKind;
  /** The source's own name (`builtin`, a command skill's name, a folder, an MCP server's name). */
  sourceName: string;
  /** Whether the server-side tool loop may run it (configuration decides; false unless allowed). */
  allowInLoop: boolean;
}

export interface SkillCallContext {
  /** Aborted at the skill's timeout or when the caller goes away: handlers must stop and free what they hold. */
  signal: AbortSignal;
  /** Who asked: an API key's digest, "mcp", "loop:<request id>", "cli" — for the audit log. */
  caller: string;
}

export interface Skill extends SkillDefinition {
  /** Runs with arguments already validated against `parameters`; returns a JSON value; throws LmxError on failure. */
  run(args: Record<string, unknown>, context: SkillCallContext): Promise<unknown>;
}

/** Where skills come from; the registry asks each source for its skills and listens for changes. */
export interface SkillSource {
  readonly kind: SkillSourceKind;
  readonly name: string;
  list(): Promise<Skill[]>;
  /** Called when the source's skills changed (an MCP server's list_changed); the registry re-lists. */
  onChange?(listener: () => void): void;
  /** Shown in /v1/skills (an MCP server's connection state, a folder that failed to parse). */
  health(): { ok: boolean; detail?: string };
  close?(): Promise<void>;
}

export interface SkillExecution {
  name: string;
  ok: boolean;
  /** The skill's JSON result when ok. */
  value?: unknown;
  /** The error when not ok (also thrown by `execute` as an LmxError for HTTP callers). */
  error?: { code: string; message: string; param?: string };
  durationMs: number;
}
