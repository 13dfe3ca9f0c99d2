/**
 * The `skills` section of the configuration: which skills exist (built-ins, command skills, Agent Skills folders,
 * MCP servers), which of them the server-side tool loop may run, and the folders `read_file` may read.
 */
import { z } from "zod";

export const SKILL_NAME = /^[a-zA-Z0-9_.-]{1,128}$/;
const skillName = z.string().regex(SKILL_NAME, "skill names use letters, digits, _ . - (at most 128)");
const argv = z.array(z.string().min(1)).min(1, "command is an argv list: the program, then its arguments (never a shell line)");
const jsonSchemaObject = z.record(z.string(), z.unknown());

/** The pure built-ins: no file system, no model, no clock-dependent side effects worth refusing a loop. */
export const PURE_BUILTINS = ["add", "subtract", "multiply", "divide", "datetime_now", "unit_convert", "json_query"] as const;
export const BUILTIN_NAMES = [...PURE_BUILTINS, "count_tokens", "read_file"] as const;

/** How a process-backed skill runs (command skills, and folder skills' `command`). */
const processSettings = {
  /** Working directory; default: the state directory (command skills) or the skill's folder (folder skills). */
  cwd: z.string().min(1).optional(),
  /** Environment variables passed through from the server's environment; nothing else is (PATH included only if listed). */
  env_allow: z.array(z.string().min(1)).default(["PATH", "LANG", "TZ"]),
  /** Fixed extra environment variables. */
  env: z.record(z.string(), z.string()).default({}),
  timeout_ms: z.number().int().positive().max(3_600_000).default(30_000),
  /** Bytes of stdout (and of stderr, separately) before the process is killed and the call fails. */
  max_output_bytes: z
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
};

const { cwd: _cwd, ...folderSettings } = processSettings;

export const commandSkillSchema = z.strictObject({
  name: skillName,
  description: z.string().min(1),
  /** argv run without a shell; the arguments object arrives as JSON on stdin, the result is read as JSON from stdout. */
  command: argv,
  /** JSON Schema of the arguments object; default: any object. */
  parameters: jsonSchemaObject.default({ type: "object" }),
  output_schema: jsonSchemaObject.optional(),
  ...processSettings,
});
export type CommandSkillConfig = z.output<typeof commandSkillSchema>;

export const mcpServerSchema = z.union([
  z.strictObject({
    name: skillName,
    /** stdio transport: argv of the server process (no shell). */
    command: argv,
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().min(1).optional(),
    timeout_ms: z.number().int().positive().optional(),
  }),
  z.strictObject({
    name: skillName,
    /** Streamable HTTP transport. */
    url: z.string().url(),
    headers: z.record(z.string(), z.string()).optional(),
    timeout_ms: z.number().int().positive().optional(),
  }),
]);
export type McpServerConfig = z.output<typeof mcpServerSchema>;

export const skillsConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** Built-ins offered; default all of them. */
    builtins: z.array(z.enum(BUILTIN_NAMES)).default([...BUILTIN_NAMES]),
    /** Skills the server-side tool loop may run; default the pure built-ins. */
    allow_in_loop: z.array(skillName).default([...PURE_BUILTINS]),
    /**
     * Generations of one server-side tool loop (docs/skills.md): the client's tool_choice applies to the first,
     * the last is told tool_choice none so the answer ends in text.
     */
    max_loop_steps: z.number().int().min(2).max(16).default(4),
    /** Default timeout of built-ins and folder skills that name none. */
    timeout_ms: z.number().int().positive().max(3_600_000).default(30_000),
    /** Serialized arguments larger than this are refused with 413. */
    max_argument_bytes: z
      .number()
      .int()
      .positive()
      .default(256 * 1024),
    files: z
      .strictObject({
        /** Folders read_file may read (links and `..` resolved first); none: read_file refuses every path. */
        roots: z.array(z.string().min(1)).default([]),
        max_bytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
      })
      .prefault({}),
    commands: z.array(commandSkillSchema).default([]),
    /** Folders whose subfolders hold Agent Skills (`SKILL.md` with front matter); see docs/skills.md. */
    folders: z.array(z.string().min(1)).default([]),
    /** Process settings of folder skills that do not set their own (they run in their own folder). */
    folder_defaults: z.strictObject(folderSettings).prefault({}),
    mcp_servers: z.array(mcpServerSchema).default([]),
    /** Execution audit rows kept in the state database (oldest pruned). */
    audit_keep: z.number().int().min(0).default(100_000),
  })
  .prefault({});
export type SkillsConfig = z.output<typeof skillsConfigSchema>;
