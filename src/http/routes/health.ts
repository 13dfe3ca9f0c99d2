import type { FastifyInstance } from "fastify";
import type { GatewayContext } from "../context.js";

export function registerHealthRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // liveness: the process answers. Never depends on models, so a crashing runner cannot fail it.
  app.get("/healthz", async () => ({ status: "ok" }));
  // readiness: start-up (auto_load) finished and not draining
  app.get("/readyz", async (_request, reply) => {
    const ready = ctx.state.ready && !ctx.state.shuttingDown;
    return reply.code(ready ? 200 : 503).send({
      status: ready ? "ready" : ctx.state.shuttingDown ? "shutting_down" : "starting",
      models_loaded: ctx.scheduler.loaded().length,
      models_loading: ctx.scheduler.loadingCount,
    });
  });
}
