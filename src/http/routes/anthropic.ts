/**
 * Anthropic's Messages API: POST /v1/messages (counted, traced and logged like the OpenAI generation routes) and
 * POST /v1/messages/count_tokens. Registered under the same API-key hook as /v1/*, which reads `x-api-key` as
 * well as a bearer token; errors come out in Anthropic's shape by path (src/errors/dialects.ts). The
 * `anthropic-version` and `anthropic-beta` headers are accepted and not required: there is one version here.
 */
import type { FastifyInstance } from "fastify";
import { parseRequest } from "../../api/openai/schemas.js";
import { countTokensRequestSchema, messagesRequestSchema, refuseUnsupported } from "../../api/anthropic/schemas.js";
import { answerMessages, countMessageTokens } from "../../serving/anthropic-messages.js";
import type { GatewayContext } from "../context.js";
import { generationRouteHooks, priorityOf, serveCounted } from "./generation.js";

export function registerAnthropicRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.post("/v1/messages", generationRouteHooks(ctx), async (request, reply) => {
    refuseUnsupported(request.body);
    const body = parseRequest(messagesRequestSchema, request.body);
    await serveCounted(ctx, request, reply, (common) => answerMessages(ctx, { ...common, body }));
  });

  app.post("/v1/messages/count_tokens", async (request, reply) => {
    refuseUnsupported(request.body);
    const body = parseRequest(countTokensRequestSchema, request.body);
    const abort = new AbortController();
    // a client that leaves stops its wait for the model
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    return countMessageTokens(ctx, {
      body,
      signal: abort.signal,
      priority: priorityOf(ctx, request),
      recorder: ctx.metrics.startRequest(performance.now()),
    });
  });
}
