/** GET /v1/models and /v1/models/{id}: every model the server can serve, each with its status. */
import type { FastifyInstance } from "fastify";
import type { ModelDescriptor } from "../../inventory/types.js";
import type { GatewayContext } from "../context.js";

export function view(ctx: GatewayContext, model: ModelDescriptor) {
  const runner = ctx.scheduler.runnerFor(model.id);
  return {
    id: model.id,
    object: "model" as const,
    created: Math.floor(ctx.startedAt / 1000),
    owned_by: "opta-lmx",
    status: ctx.scheduler.unservableReason(model) ? ("unavailable" as const) : ctx.scheduler.status(model.id),
    type: model.type,
    aliases: model.aliases,
    source: model.source,
    size_bytes: model.sizeBytes,
    context_size: runner?.info.contextSize ?? model.settings.contextSize,
    last_error: ctx.scheduler.lastError(model.id),
  };
}

export function registerModelRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/models", async () => ({ object: "list", data: (await ctx.inventory.list()).map((m) => view(ctx, m)) }));
  // ids may contain slashes (org/name), so the rest of the path is the id
  app.get("/v1/models/*", async (request) => {
    const id = decodeURIComponent((request.params as { "*": string })["*"]);
    return view(ctx, await ctx.inventory.resolve(id));
  });
}
