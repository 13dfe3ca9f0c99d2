import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import http from "node:http";
import type { Duplex } from "node:stream";
import { LmxError, toHttp } from "../errors/codes.js";
import type { GatewayContext } from "./context.js";
import { apiKeyOf, matchesAny } from "./auth.js";
import { sendError } from "./errors.js";
import { createSecurityPolicy, enforceSecurity } from "./security.js";
import { registerAdminRoutes } from "./routes/admin.js";
import { registerAnthropicRoutes } from "./routes/anthropic.js";
import { registerGenerationRoutes } from "./routes/generation.js";
import { registerOllamaRoutes } from "./routes/ollama.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerMetricsRoutes } from "./routes/metrics.js";
import { registerModelRoutes } from "./routes/models.js";
import { registerResponsesRoutes } from "./routes/responses.js";
import { registerSkillRoutes } from "./routes/skills.js";
import { registerUiRoutes } from "./routes/ui.js";
import { sessionAuthenticates, sessionStoreFor } from "./ui-sessions.js";
import { registerMcpRoutes } from "./routes/mcp.js";
import { registerAgentRoutes } from "./routes/agents.js";

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (oversized headers, stalled uploads, garbage)
 * still get an OpenAI-shaped answer, then the socket closes.
 */
function clientErrorHandler(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lmx =
    error.code === "HPE_HEADER_OVERFLOW"
      ? new LmxError("request_header_too_large", "the request line or headers are too large")
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? new LmxError("request_timeout", "the request was not received completely within request_timeout_sec")
        : new LmxError("invalid_request", "the request is not valid HTTP");
  const { status, body } = toHttp(lmx);
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

export function buildApp(ctx: GatewayContext): FastifyInstance {
  const requestTimeoutMs = ctx.config.request_timeout_sec * 1000;
  const app = Fastify({
    // Node checks request timeouts only every connectionsCheckingInterval (30 s by default), so a stalled upload
    // would outlive request_timeout_sec by up to that much: check at least as often as the timeout itself.
    serverFactory: (handler) =>
      http.createServer({ requestTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs) }, handler),
    clientErrorHandler,
    loggerInstance: ctx.log as FastifyBaseLogger,
    bodyLimit: ctx.config.max_body_bytes,
    // slow or stalled uploads must not hold a connection forever (slow-loris)
    requestTimeout: requestTimeoutMs,
    // per-request lines only when debugging: a fleet of bots would otherwise drown the log
    logController: new LogController({ disableRequestLogging: ctx.config.log_level !== "debug" && ctx.config.log_level !== "trace" }),
    return503OnClosing: true,
    forceCloseConnections: false,
    requestIdHeader: "x-request-id",
  });

  // JSON bodies only as application/json (Fastify's own parser): text/plain and form bodies are what a web page
  // may send cross-site without a CORS preflight, so accepting them as JSON let any page drive the server.
  // (Fastify parses text/plain into a string by default: nothing here takes one, so it goes as well.)
  app.removeContentTypeParser("text/plain");
  const security = createSecurityPolicy(ctx.config);
  app.addHook("onRequest", async (request, reply) => {
    if (enforceSecurity(security, request, reply)) return reply;
    return undefined;
  });

  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new LmxError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );

  registerHealthRoutes(app, ctx);
  // outside the /v1 plugin: scrapers use the admin key (when set), not an API key
  registerMetricsRoutes(app, ctx);
  const sessions = ctx.config.api_keys.length > 0 ? sessionStoreFor(ctx) : null;
  const requireApiKey = async (request: FastifyRequest) => {
    const key = apiKeyOf(request);
    // the operator logged in to the dashboard holds the admin key, which is worth at least an API key
    if (!key && sessions && sessionAuthenticates(sessions, request)) return;
    if (!key || !matchesAny(key, ctx.config.api_keys)) {
      throw new LmxError(
        "invalid_api_key",
        key
          ? "incorrect API key provided; it must be one of api_keys (LMX_API_KEYS)"
          : "this server needs an API key: send Authorization: Bearer <key> (or x-api-key: <key>) with one of api_keys (LMX_API_KEYS)",
      );
    }
  };
  app.register(async (openai) => {
    if (ctx.config.api_keys.length > 0) openai.addHook("onRequest", requireApiKey);
    registerModelRoutes(openai, ctx);
    registerGenerationRoutes(openai, ctx);
    registerAnthropicRoutes(openai, ctx);
    registerResponsesRoutes(openai, ctx);
    registerSkillRoutes(openai, ctx);
    registerAgentRoutes(openai, ctx);
    // the skills as an MCP server: behind the same API keys as /v1/*
    registerMcpRoutes(openai, { catalog: ctx.skills, version: ctx.version });
  });
  // Ollama's dialect: the same keys, the same chat layer and metrics (DELETE /api/delete also needs the admin key)
  app.register(async (ollama) => {
    if (ctx.config.api_keys.length > 0) ollama.addHook("onRequest", requireApiKey);
    registerOllamaRoutes(ollama, ctx);
  });
  registerAdminRoutes(app, ctx);
  registerUiRoutes(app, ctx);
  return app;
}
