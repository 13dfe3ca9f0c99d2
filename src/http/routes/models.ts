/** GET /v1/models and /v1/models/{id}: every model the server can serve, each with its status. */
import type { FastifyInstance } from "fastify";
import type { ModelDescriptor } from "../../inventory/types.js";
import type { GatewayContext } from "../context.js";
import { remoteModelViews } from "./nodes.js";

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

/** Local models, then the remote nodes' (src/nodes/) with where they live; a local id wins unless a node is preferred. */
async function allModels(ctx: GatewayContext) {
  const local = (await ctx.inventory.list()).map((m) => view(ctx, m));
  if (!ctx.nodes || ctx.nodes.size === 0) return local;
  const remote = remoteModelViews(ctx.nodes, Math.floor(ctx.startedAt / 1000));
  const preferred = new Set(remote.filter((r) => r.preferred).map((r) => r.id));
  const localIds = new Set(local.map((m) => m.id));
  return [
    ...local.filter((m) => !preferred.has(m.id)),
    ...remote.filter((r) => r.preferred || !localIds.has(r.id)).map(({ preferred: _preferred, ...entry }) => entry),
  ];
}

export function registerModelRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get("/v1/models", async () => ({ object: "list", data: await allModels(ctx) }));
  // ids may contain slashes (org/name), so the rest of the path is the id
  app.get("/v1/models/*", async (request) => {
    const id = decodeURIComponent((request.params as { "*": string })["*"]);
    const remote = ctx.nodes && ctx.nodes.listing(id).length > 0 ? (await allModels(ctx)).find((m) => m.id === id && "node" in m) : undefined;
    return remote ?? view(ctx, await ctx.inventory.resolve(id));
  });
}
