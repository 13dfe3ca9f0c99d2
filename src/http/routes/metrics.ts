/**
 * GET /metrics and GET /admin/metrics: the Prometheus text exposition. Both are behind `admin_key` when one
 * is set (model ids and traffic are operator data); Prometheus sends it with `authorization: {credentials: KEY}`.
 * /metrics is where scrapers look by default; /admin/metrics keeps the admin namespace complete.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { requireAdminKey } from "../auth.js";
import type { GatewayContext } from "../context.js";
import { sessionAuthenticates, sessionStoreFor } from "../ui-sessions.js";

export function registerMetricsRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const sessions = sessionStoreFor(ctx);
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    requireAdminKey(ctx.config.admin_key, request, (r) => sessionAuthenticates(sessions, r));
    const { contentType, body } = await ctx.metrics.scrape();
    return reply.header("content-type", contentType).header("cache-control", "no-store").send(body);
  };
  app.get("/metrics", serve);
  app.get("/admin/metrics", serve);
}
