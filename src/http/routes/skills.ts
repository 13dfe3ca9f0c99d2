/**
 * /v1/skills*: list, describe and execute the server's skills, natively and in MCP's shapes (registered inside
 * the API-key plugin). Refusals before a skill runs (unknown 404, arguments 400/413, forbidden 403) are errors
 * in both shapes; a handler that fails or times out is an error on the native route (502 skill_failed,
 * 504 skill_timeout, 502 mcp_server_unavailable) and an `isError` result on the MCP route, as MCP defines it.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { parseRequest } from "../../api/openai/schemas.js";
import {
  executeAnswer,
  executeRequestSchema,
  mcpCallRequestSchema,
  mcpCallResult,
  mcpTool,
  skillListView,
  skillView,
} from "../../api/skills/wire.js";
import { LmxError } from "../../errors/codes.js";
import { executionError } from "../../skills/registry.js";
import type { GatewayContext } from "../context.js";
import { bearerToken } from "../auth.js";

/** The audit log's caller: a digest of the API key (never the key), or "http" on a server without keys. */
export function httpCaller(request: FastifyRequest): string {
  const key = bearerToken(request);
  return key ? `key:${createHash("sha256").update(key).digest("hex").slice(0, 12)}` : "http";
}

/** Aborted when the client goes away before its answer: the skill is stopped, not left running for nobody. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function registerSkillRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const skills = ctx.skills;
  const known = (name: string) => {
    const skill = skills.get(name);
    if (!skill) throw new LmxError("skill_not_found", `no skill named '${name.slice(0, 200)}'; GET /v1/skills lists them`);
    return skill;
  };

  app.get("/v1/skills", async () => skillListView(skills.list(), skills.health()));
  app.get("/v1/skills/mcp/tools", async () => ({ tools: skills.list().map(mcpTool) }));
  app.get("/v1/skills/:name", async (request) => skillView(known((request.params as { name: string }).name)));

  app.post("/v1/skills/:name/execute", async (request, reply) => {
    const { name } = request.params as { name: string };
    const body = parseRequest(executeRequestSchema, request.body ?? {});
    const execution = await skills.execute(name, body.arguments ?? {}, { caller: httpCaller(request), signal: clientGone(reply) });
    if (!execution.ok) throw executionError(execution);
    return executeAnswer(execution);
  });

  app.post("/v1/skills/mcp/call", async (request, reply) => {
    const body = parseRequest(mcpCallRequestSchema, request.body);
    const execution = await skills.execute(body.name, body.arguments ?? {}, { caller: httpCaller(request), signal: clientGone(reply) });
    return mcpCallResult(skills.get(body.name), execution);
  });
}
