/**
 * The registry's skills as an MCP server (tools/list, tools/call) with `@modelcontextprotocol/sdk`'s low-level
 * `Server`: one per MCP session (the HTTP side, src/http/routes/mcp.ts, owns sessions and transports). Every call
 * goes through `SkillRegistry.execute` with caller "mcp", so validation, timeouts, the audit row and metrics are
 * the same as on /v1/skills.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type CallToolResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { LmxError } from "../errors/codes.js";
import type { JsonSchema } from "../chat/types.js";
import type { ExecuteOptions } from "./registry.js";
import type { SkillDefinition, SkillExecution } from "./types.js";

/** What the MCP server needs of the registry. */
export interface SkillCatalog {
  list(): SkillDefinition[];
  execute(name: string, args: unknown, options: ExecuteOptions): Promise<SkillExecution>;
}

export function createSkillsMcpServer(catalog: SkillCatalog, version: string): Server {
  const server = new Server(
    { name: "opta-lmx", title: "Opta LMX skills", version },
    {
      capabilities: { tools: { listChanged: true } },
      instructions: "Tools run by this Opta LMX server (its skills registry); results are JSON.",
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: catalog.list().map(mcpToolOf) }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { name, arguments: args } = request.params;
    let execution: SkillExecution;
    try {
      execution = await catalog.execute(name, args ?? {}, { caller: "mcp", signal: extra.signal });
    } catch (error) {
      // MCP's rule: an unknown tool is a protocol error; a refused call (bad arguments...) is a tool result
      if (error instanceof LmxError && error.code === "skill_not_found") throw new McpError(ErrorCode.InvalidParams, error.message);
      if (error instanceof LmxError) return errorResult(error.code, error.message, error.param);
      throw error;
    }
    if (!execution.ok) {
      const failure = execution.error ?? { code: "skill_failed", message: `skill '${name}' failed` };
      return errorResult(failure.code, failure.message, failure.param ?? null);
    }
    return successResult(execution.value);
  });
  return server;
}

/**
 * A skill as an MCP tool. MCP wants object schemas for input and output; a skill whose result is not an object
 * (add's number) is announced with its result under `result`, and `structuredContent` carries it the same way.
 */
export function mcpToolOf(skill: SkillDefinition): Tool {
  const tool: Tool = {
    name: skill.name,
    description: skill.description,
    inputSchema: asObjectSchema(skill.parameters) as Tool["inputSchema"],
  };
  if (skill.outputSchema !== undefined) {
    tool.outputSchema = (isObjectSchema(skill.outputSchema)
      ? skill.outputSchema
      : { type: "object", properties: { result: skill.outputSchema }, required: ["result"] }) as Tool["outputSchema"];
  }
  return tool;
}

/** `content` holds the value as JSON text (what every MCP client shows); `structuredContent` the value itself. */
export function successResult(value: unknown): CallToolResult {
  return {
    content: [{ type: "text", text: JSON.stringify(value ?? null) }],
    structuredContent: isPlainObject(value) ? value : { result: value ?? null },
    isError: false,
  };
}

function errorResult(code: string, message: string, param: string | null | undefined): CallToolResult {
  const error = { code, message, ...(param ? { param } : {}) };
  return { content: [{ type: "text", text: JSON.stringify({ error }) }], isError: true };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isObjectSchema(schema: JsonSchema): boolean {
  return isPlainObject(schema) && schema["type"] === "object";
}

function asObjectSchema(schema: JsonSchema): Record<string, unknown> {
  if (!isPlainObject(schema)) return { type: "object" };
  return schema["type"] === "object" ? schema : { ...schema, type: "object" };
}
