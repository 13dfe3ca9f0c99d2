/**
 * GET /metrics and GET /admin/metrics: the Prometheus text exposition. Both are behind `admin_key` when one
 * is set (model ids and traffic are operator data); Prometheus sends it with `authorization: {credentials: KEY}`.
 * /metrics is where scrapers look by default; /admin/metrics keeps the admin namespace complete.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LmxError } from "../../errors/codes.js";
import { bearerToken, sameKey } from "../auth.js";
import type { GatewayContext } from "../context.js";

// Same rule as the /admin/* plugin (admin.ts): X-Admin-Key, or Authorization: Bearer.
function checkAdminKey(ctx: GatewayContext, request: FastifyRequest): void {
  const expected = ctx.config.admin_key;
  if (!expected) return;
  const header = request.headers["x-admin-key"];
  const key = typeof header === "string" && header ? header : bearerToken(request);
  if (!key || !sameKey(key, expected)) {
    throw new LmxError(
      "unauthorized",
      key
        ? "the admin key is wrong: send the value of admin_key (or LMX_ADMIN_KEY) in the X-Admin-Key header"
        : "metrics need the admin key: send the value of admin_key (or LMX_ADMIN_KEY) in the X-Admin-Key header or as Authorization: Bearer",
    );
  }
}

export function registerMetricsRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    checkAdminKey(ctx, request);
    const { contentType, body } = await ctx.metrics.scrape();
    return reply.header("content-type", contentType).header("cache-control", "no-store").send(body);
  };
  app.get("/metrics", serve);
  app.get("/admin/metrics", serve);
}
