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
import { mcpCallResult, mcpTool } from "../api/skills/wire.js";
import type { ExecuteOptions } from "./registry.js";
import type { SkillDefinition, SkillExecution } from "./types.js";

/** What the MCP server needs of the registry. */
export interface SkillCatalog {
  list(): SkillDefinition[];
  get(name: string): SkillDefinition | undefined;
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
  // the same shapes as GET /v1/skills/mcp/tools and POST /v1/skills/mcp/call (src/api/skills/wire.ts)
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: catalog.list().map(mcpTool) as Tool[] }));
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const { name, arguments: args } = request.params;
    let execution: SkillExecution;
    try {
      execution = await catalog.execute(name, args ?? {}, { caller: "mcp", signal: extra.signal });
    } catch (error) {
      // MCP's rule: an unknown tool is a protocol error; a refused call (bad arguments...) is a tool result
      if (error instanceof LmxError && error.code === "skill_not_found") throw new McpError(ErrorCode.InvalidParams, error.message);
      if (!(error instanceof LmxError)) throw error;
      execution = { name, ok: false, error: { code: error.code, message: error.message }, durationMs: 0 };
    }
    return { ...mcpCallResult(catalog.get(name), execution) };
  });
  return server;
}
