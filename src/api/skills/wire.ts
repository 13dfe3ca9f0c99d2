/**
 * The skills API's wire shapes, without an HTTP framework: our listing (snake_case), the execute request and
 * answer, and the MCP shapes (tools/list's Tool, tools/call's CallToolResult) that `/v1/skills/mcp/*` and the
 * MCP server at `/mcp` both answer with, so the two cannot drift.
 *
 * MCP wants object results: a tool's `outputSchema` must be `type: "object"` and `structuredContent` an object.
 * A skill whose result is not an object (add → 7) is described as `{result: <its schema>}` and answers
 * `structuredContent: {result: 7}`; its text content is the JSON of the value itself ("7"), the same value the
 * native execute answers as `result`.
 */
import { z } from "zod";
import type { JsonSchema } from "../../chat/types.js";
import type { SourceHealth } from "../../skills/registry.js";
import type { SkillDefinition, SkillExecution } from "../../skills/types.js";

export interface SkillView {
  name: string;
  description: string;
  parameters: JsonSchema;
  output_schema: JsonSchema | null;
  source: string;
  source_name: string;
  timeout_ms: number;
  allow_in_loop: boolean;
}

export function skillView(skill: SkillDefinition): SkillView {
  return {
    name: skill.name,
    description: skill.description,
    parameters: skill.parameters,
    output_schema: skill.outputSchema ?? null,
    source: skill.source,
    source_name: skill.sourceName,
    timeout_ms: skill.timeoutMs,
    allow_in_loop: skill.allowInLoop,
  };
}

export function skillListView(skills: SkillDefinition[], sources: SourceHealth[]) {
  return {
    object: "list" as const,
    data: skills.map(skillView),
    sources: sources.map((s) => ({ kind: s.kind, name: s.name, ok: s.ok, skills: s.skills, detail: s.detail ?? null })),
  };
}

export const executeRequestSchema = z.strictObject({
  /** Checked by the registry (size first, then the skill's schema): absent means `{}`. */
  arguments: z.unknown().optional(),
});

export const mcpCallRequestSchema = z.strictObject({
  name: z.string().min(1),
  arguments: z.unknown().optional(),
});

export interface ExecuteAnswer {
  name: string;
  ok: true;
  result: unknown;
  duration_ms: number;
}

export function executeAnswer(execution: SkillExecution): ExecuteAnswer {
  return { name: execution.name, ok: true, result: execution.value ?? null, duration_ms: execution.durationMs };
}

export interface McpTool {
  name: string;
  description: string;
  inputSchema: { type: "object"; [key: string]: unknown };
  outputSchema?: { type: "object"; [key: string]: unknown };
}

function isObjectSchema(schema: JsonSchema | undefined): schema is { type: "object"; [key: string]: unknown } {
  return typeof schema === "object" && schema !== null && schema["type"] === "object";
}

export function mcpTool(skill: SkillDefinition): McpTool {
  // MCP requires an object input schema; a skill's parameters always describe an arguments object
  const input = isObjectSchema(skill.parameters)
    ? skill.parameters
    : { type: "object" as const, ...(typeof skill.parameters === "object" ? skill.parameters : {}) };
  const tool: McpTool = { name: skill.name, description: skill.description, inputSchema: input };
  if (skill.outputSchema !== undefined) {
    tool.outputSchema = isObjectSchema(skill.outputSchema)
      ? skill.outputSchema
      : { type: "object", properties: { result: skill.outputSchema }, required: ["result"] };
  }
  return tool;
}

export interface McpCallToolResult {
  content: Array<{ type: "text"; text: string }>;
  structuredContent?: Record<string, unknown>;
  isError: boolean;
}

/** A skill's outcome as MCP's CallToolResult: a failed handler is `isError: true` with the message as text. */
export function mcpCallResult(skill: SkillDefinition | undefined, execution: SkillExecution): McpCallToolResult {
  if (!execution.ok) {
    const error = execution.error ?? { code: "skill_failed", message: "the skill failed" };
    return { content: [{ type: "text", text: `${error.code}: ${error.message}` }], isError: true };
  }
  const value = execution.value ?? null;
  const result: McpCallToolResult = { content: [{ type: "text", text: JSON.stringify(value) }], isError: false };
  if (skill?.outputSchema !== undefined) {
    result.structuredContent = isObjectSchema(skill.outputSchema) ? (value as Record<string, unknown>) : { result: value };
  } else if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    result.structuredContent = value as Record<string, unknown>;
  }
  return result;
}
