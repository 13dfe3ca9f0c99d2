import type { FastifyInstance } from "fastify";
import type { GatewayContext } from "../context.js";

export function registerHealthRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  // liveness: the process answers. Never depends on models, so a crashing runner cannot fail it. The service name
  // and version let a probe tell this server from something else on the port (1234 is LM Studio's default too).
  const liveness = async () => ({ status: "ok", service: "opta-lmx", version: ctx.version });
  app.get("/healthz", liveness);
  // the operators' runbook path; open like /healthz (outside the admin_key scope): it says no more than /healthz,
  // and a health check that needs a secret gets copied into scripts with the secret in it
  app.get("/admin/health", liveness);
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
