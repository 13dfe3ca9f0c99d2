/**
 * Autotune and presets (docs/autotune.md):
 * - POST /admin/models/autotune starts a search (202 with the job; `wait: true` answers when it ends); a second
 *   one while one runs gets 409 autotune_in_progress;
 * - GET /admin/autotune/jobs/{id}: the job's progress (candidate n of N, best so far) and, once done, its result;
 * - GET /admin/models/{model_id}/autotune: the current tuned profile and the history, on this machine;
 * - POST /admin/models/{model_id}/autotune/rollback: back to the last known good profile (or to none);
 * - GET /admin/presets and GET /admin/autotune/tunables: what can be chosen, and what a search varies.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../../api/openai/schemas.js";
import { runnerSettingsSchema } from "../../config/schema.js";
import type { GatewayContext } from "../context.js";
import { AutotuneService } from "../../tuning/autotune.js";
import { machineSignature, type MachineSignature } from "../../tuning/machine.js";
import { allPresets } from "../../tuning/presets.js";
import { ProfileStore } from "../../tuning/profiles.js";
import { TUNABLES } from "../../tuning/tunables.js";
import { WORKLOADS, workloadSchema } from "../../tuning/workloads.js";

export const DEFAULT_BUDGET_SEC = 300;

const autotuneBody = z.strictObject({
  model_id: z.string().min(1).max(512),
  workload: workloadSchema.optional(),
  budget_sec: z.number().positive().optional(),
  /** Record the result without applying it. */
  dry_run: z.boolean().optional(),
  /** Settings to try besides the grid's. */
  candidates: z.array(runnerSettingsSchema).max(16).optional(),
  /** Only these axes (tunable names); default: every axis of the backend. */
  axes: z.array(z.string().min(1).max(64)).max(32).optional(),
  /** Answer when the search ends instead of at once (scripts, tests). */
  wait: z.boolean().optional(),
});

export interface AutotuneState {
  service: AutotuneService;
  profiles: ProfileStore;
  machine: MachineSignature;
}

/** Per server, not per process: tests run several gateways in one process. */
const states = new WeakMap<GatewayContext, AutotuneState>();

/**
 * The autotune state of a server, made on first use. Making it also has the inventory apply tuned profiles at
 * load (when autotune.apply_profiles), so that JIT loads and operator loads both use them.
 */
export function autotuneFor(ctx: GatewayContext): AutotuneState {
  let state = states.get(ctx);
  if (state) return state;
  const profiles = new ProfileStore(ctx.storage);
  const machine = machineSignature(ctx.config.gpu);
  const service = new AutotuneService({
    scheduler: ctx.scheduler,
    inventory: ctx.inventory,
    registry: ctx.registry,
    profiles,
    machine,
    loaderTimeoutMs: ctx.config.loader_timeout_sec * 1000,
    maxBudgetSec: ctx.config.autotune.max_budget_sec,
    log: (level, message, fields) => ctx.log[level](fields ?? {}, message),
  });
  if (ctx.config.autotune.apply_profiles) {
    ctx.inventory.useTunedProfiles((model) => {
      const profile = profiles.current(model.id, machine.id, () => ctx.scheduler.candidates(model));
      return profile ? { id: profile.id, settings: profile.settings } : null;
    });
  }
  state = { service, profiles, machine };
  states.set(ctx, state);
  return state;
}

export function registerAutotuneRoutes(admin: FastifyInstance, ctx: GatewayContext): void {
  const { service, profiles, machine } = autotuneFor(ctx);

  admin.get("/admin/presets", async () => ({
    object: "list",
    data: allPresets(ctx.config.presets).map((p) => ({ name: p.name, description: p.description, built_in: p.builtIn, settings: p.settings })),
  }));

  admin.get("/admin/autotune/tunables", async () => ({
    machine,
    workloads: WORKLOADS,
    backends: Object.fromEntries(
      Object.entries(TUNABLES).map(([backend, list]) => [
        backend,
        list.map((t) => ({ name: t.name, settings: t.settings, range: t.range, memory: t.memory })),
      ]),
    ),
  }));

  admin.post("/admin/models/autotune", async (request, reply) => {
    const body = parseRequest(autotuneBody, request.body);
    const model = await ctx.inventory.resolve(body.model_id);
    const { job, done } = await service.start({
      modelId: model.id,
      ...(body.workload !== undefined ? { workload: body.workload } : {}),
      budgetSec: body.budget_sec ?? DEFAULT_BUDGET_SEC,
      dryRun: body.dry_run ?? false,
      ...(body.candidates ? { candidates: body.candidates } : {}),
      ...(body.axes ? { axes: body.axes } : {}),
    });
    if (body.wait) return done;
    return reply.code(202).send({ ...job, poll: `/admin/autotune/jobs/${job.id}` });
  });

  admin.get("/admin/autotune/jobs/:id", async (request) => {
    const { id } = request.params as { id: string };
    const job = service.job(id);
    if (!job) throw new LmxError("not_found", `no autotune job '${id}' (the last 20 are kept)`);
    return job;
  });

  // model ids contain slashes (org/name:quant): the id is everything between /admin/models/ and the action
  admin.get("/admin/models/*", async (request) => {
    const rest = (request.params as { "*": string })["*"];
    const match = /^(.+)\/autotune$/.exec(rest);
    if (!match) throw new LmxError("not_found", `no route GET /admin/models/${rest}`);
    const model = await ctx.inventory.resolve(match[1]!);
    const current = profiles.current(model.id, machine.id, () => ctx.scheduler.candidates(model));
    return { model_id: model.id, machine, current, history: profiles.history(model.id, machine.id) };
  });

  admin.post("/admin/models/*", async (request) => {
    const rest = (request.params as { "*": string })["*"];
    const match = /^(.+)\/autotune\/rollback$/.exec(rest);
    if (!match) throw new LmxError("not_found", `no route POST /admin/models/${rest}`);
    const model = await ctx.inventory.resolve(match[1]!);
    const backends = () => ctx.scheduler.candidates(model);
    const current = profiles.current(model.id, machine.id, backends);
    if (!current)
      throw new LmxError("not_found", `'${model.id}' has no tuned profile in use on this machine; nothing to roll back`, { param: "model_id" });
    const now = profiles.rollback(current, backends);
    return {
      model_id: model.id,
      rolled_back: current.id,
      current: now,
      // a loaded model keeps the settings it was started with until its next load
      note: "applies at the model's next load (POST /admin/models/load reloads it when the settings differ)",
    };
  });
}
