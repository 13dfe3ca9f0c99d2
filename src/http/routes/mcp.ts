/**
 * `/mcp`: the skills as an MCP server over Streamable HTTP (the SDK's server transport, handed the raw request
 * and response and the body Fastify already parsed).
 *
 * Session-based, not stateless: a session's client can keep a GET stream open and hear
 * `notifications/tools/list_changed` when the skills change, which a stateless server cannot send. Sessions live
 * in memory (a restart of the gateway ends them: clients see 404 and initialize again, as the spec says), at most
 * MAX_SESSIONS at once (the least recently used goes first) and closed after SESSION_IDLE_MS without a request
 * or an open stream.
 */
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { mcpTool } from "../../api/skills/wire.js";
import { createSkillsMcpServer, type SkillCatalog } from "../../skills/mcp-server.js";

const MAX_SESSIONS = 256;
const SESSION_IDLE_MS = 30 * 60_000;
const SWEEP_MS = 60_000;

interface Session {
  transport: StreamableHTTPServerTransport;
  server: Server;
  lastSeen: number;
  /** Open GET streams: a session listening for notifications is not idle. */
  streams: number;
}

export interface McpRouteOptions {
  catalog: SkillCatalog & { on(event: "changed", listener: () => void): unknown; off(event: "changed", listener: () => void): unknown };
  version: string;
}

export function registerMcpRoutes(app: FastifyInstance, options: McpRouteOptions): void {
  const sessions = new Map<string, Session>();
  let lastTools = toolsDigest(options);

  const closeSession = (id: string) => {
    const session = sessions.get(id);
    if (!session) return;
    sessions.delete(id);
    void session.transport.close().catch(() => undefined);
    void session.server.close().catch(() => undefined);
  };

  // the registry re-lists on every source change; clients hear only of real changes to the tools they see
  const onChanged = () => {
    const digest = toolsDigest(options);
    if (digest === lastTools) return;
    lastTools = digest;
    for (const session of sessions.values()) void session.server.sendToolListChanged().catch(() => undefined);
  };
  options.catalog.on("changed", onChanged);

  const sweep = setInterval(() => {
    const cutoff = Date.now() - SESSION_IDLE_MS;
    for (const [id, session] of sessions) if (session.streams === 0 && session.lastSeen < cutoff) closeSession(id);
  }, SWEEP_MS);
  sweep.unref();

  // open GET streams would otherwise hold the server's close until their clients leave
  app.addHook("preClose", async () => {
    clearInterval(sweep);
    options.catalog.off("changed", onChanged);
    for (const id of [...sessions.keys()]) closeSession(id);
  });

  const newSession = async (): Promise<StreamableHTTPServerTransport> => {
    if (sessions.size >= MAX_SESSIONS) {
      const oldest = [...sessions.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen)[0];
      if (oldest) closeSession(oldest[0]);
    }
    const server = createSkillsMcpServer(options.catalog, options.version);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, server, lastSeen: Date.now(), streams: 0 });
      },
      onsessionclosed: (id) => closeSession(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    return transport;
  };

  const handle = async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers["mcp-session-id"];
    const sessionId = typeof header === "string" ? header : undefined;
    let transport: StreamableHTTPServerTransport;
    const session = sessionId ? sessions.get(sessionId) : undefined;
    if (session) {
      session.lastSeen = Date.now();
      transport = session.transport;
      if (request.method === "GET") {
        session.streams++;
        reply.raw.once("close", () => {
          session.streams--;
          session.lastSeen = Date.now();
        });
      }
    } else if (sessionId) {
      // an unknown or expired session: 404 tells the client to initialize a new one
      return jsonRpcError(reply, 404, -32001, "session not found: initialize a new MCP session");
    } else if (request.method === "POST" && isInitializeRequest(request.body)) {
      transport = await newSession();
    } else {
      return jsonRpcError(reply, 400, -32000, "no MCP session: send an initialize request without mcp-session-id first");
    }
    reply.hijack();
    await transport.handleRequest(request.raw, reply.raw, request.body);
  };

  app.post("/mcp", handle);
  app.get("/mcp", handle);
  app.delete("/mcp", handle);
}

function jsonRpcError(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
  return reply.code(status).type("application/json").send({ jsonrpc: "2.0", error: { code, message }, id: null });
}

function toolsDigest(options: McpRouteOptions): string {
  return JSON.stringify(options.catalog.list().map(mcpTool));
}
