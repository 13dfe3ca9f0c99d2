/** /admin/models/compatibility, /unquarantine and /probe: what has worked where, and how to try again. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { parseRequest } from "../../api/openai/schemas.js";
import type { GatewayContext } from "../context.js";

const compatibilityQuery = z.strictObject({
  view: z.enum(["list", "latest", "summary"]).optional(),
  model: z.string().min(1).max(512).optional(),
  backend: z.string().min(1).max(100).optional(),
  outcome: z.enum(["success", "failure", "refused"]).optional(),
  since: z.string().datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
});

const unquarantineBody = z.strictObject({ model_id: z.string().min(1).max(512), backend: z.string().min(1).max(100).optional() });

const probeBody = z.strictObject({
  model_id: z.string().min(1).max(512),
  timeout_sec: z.number().positive().max(3600).optional(),
  allow_unsupported_runtime: z.boolean().optional(),
});

export function registerReliabilityRoutes(admin: FastifyInstance, ctx: GatewayContext): void {
  admin.get("/admin/models/compatibility", async (request) => {
    const query = parseRequest(compatibilityQuery, request.query ?? {});
    const registry = ctx.registry;
    if (query.view === "summary") return { object: "list", data: registry.summary() };
    if (query.view === "latest") return { object: "list", data: registry.latest(query.model) };
    return {
      object: "list",
      total: registry.count(),
      quarantined: registry.quarantined(),
      data: registry.list({
        ...(query.model ? { modelId: query.model } : {}),
        ...(query.backend ? { backend: query.backend } : {}),
        ...(query.outcome ? { outcome: query.outcome } : {}),
        ...(query.since ? { since: query.since } : {}),
        ...(query.limit ? { limit: query.limit } : {}),
      }),
    };
  });

  admin.post("/admin/models/unquarantine", async (request) => {
    const { model_id, backend } = parseRequest(unquarantineBody, request.body);
    const model = await ctx.inventory.resolve(model_id);
    const released = ctx.registry.unquarantine(model.id, backend);
    ctx.scheduler.unquarantined(model.id);
    return { status: "ok", model_id: model.id, keys_released: released, quarantined: ctx.scheduler.quarantineOf(model).quarantined };
  });

  admin.post("/admin/models/probe", async (request) => {
    const body = parseRequest(probeBody, request.body);
    const model = await ctx.inventory.resolve(body.model_id);
    const results = await ctx.scheduler.probe(model, {
      timeoutMs: (body.timeout_sec ?? ctx.config.loader_timeout_sec) * 1000,
      allowUnsupported: body.allow_unsupported_runtime ?? false,
    });
    const best = results.filter((r) => r.outcome === "success").sort((a, b) => (b.canaryTokensPerSec ?? 0) - (a.canaryTokensPerSec ?? 0))[0];
    return { model_id: model.id, results, recommended_backend: best?.backend ?? null };
  });
}
