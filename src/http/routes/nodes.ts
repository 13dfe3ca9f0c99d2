/** GET /admin/nodes: the remote nodes, their state, load and models; and their models' entries for /v1/models. */
import type { FastifyInstance } from "fastify";
import type { NodeRegistry } from "../../nodes/registry.js";
import type { GatewayContext } from "../context.js";

/** A remote model as /v1/models lists it: OpenAI's shape, plus where it lives. */
export interface RemoteModelView {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  /** The node a request for it goes to now (the best candidate), or the first that lists it when none is up. */
  node: string;
  /** Every node that lists it. */
  nodes: string[];
  status: "loaded" | "loading" | "available" | "unavailable";
}

/**
 * Every model the nodes list, once per id; `preferred` ids are those a node with `prefer` serves (they replace a
 * local model of the same id in the list, as they do in routing).
 */
export function remoteModelViews(nodes: NodeRegistry, created: number): Array<RemoteModelView & { preferred: boolean }> {
  const ids = new Set(nodes.nodes.flatMap((n) => n.models.map((m) => m.id)));
  return [...ids].map((id) => {
    const listing = nodes.listing(id);
    const best = nodes.candidates(id)[0];
    return {
      id,
      object: "model" as const,
      created,
      owned_by: (best ?? listing[0]!).name,
      node: (best ?? listing[0]!).name,
      nodes: listing.map((n) => n.name),
      status: best?.model(id)?.status ?? ("unavailable" as const),
      preferred: listing.some((n) => n.config.prefer && n.up === true),
    };
  });
}

export function registerNodeRoutes(admin: FastifyInstance, ctx: GatewayContext): void {
  admin.get("/admin/nodes", async () => ({ object: "list", data: ctx.nodes?.snapshots() ?? [] }));
}
