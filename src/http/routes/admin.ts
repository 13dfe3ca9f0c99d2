/** /admin/*: operator endpoints, behind `admin_key` when one is configured. */
import { statfs } from "node:fs/promises";
import path from "node:path";
import { expandHome } from "../../config/load.js";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../../api/openai/schemas.js";
import { pickBySource } from "../../tuning/precedence.js";
import { runnerSettingsSchema, type RunnerSettingsInput } from "../../config/schema.js";
import { registerReliabilityRoutes } from "./reliability.js";
import { registerNodeRoutes } from "./nodes.js";
import { registerBenchmarkRoutes } from "./benchmark.js";
import { registerEventRoutes } from "./events.js";
import { registerAutotuneRoutes } from "./autotune.js";
import { asLmxError as asDownloadLmxError, downloadRequestFor, registerDownloadRoutes, startDownload } from "./downloads.js";
import type { GatewayContext } from "../context.js";
import { requireAdminKey } from "../auth.js";
import { sessionAuthenticates, sessionStoreFor } from "../ui-sessions.js";
import { snakeCaseKeys } from "../../api/admin/casing.js";

const modelIdBody = z.strictObject({ model_id: z.string().min(1).max(512) });
const loadBody = z.strictObject({
  model_id: z.string().min(1).max(512),
  settings: runnerSettingsSchema.optional(),
  /** A preset (GET /admin/presets) under the explicit settings, instead of the model entry's. */
  preset: z.string().min(1).max(64).optional(),
  /** Fetch missing files from the hub first (or the whole `org/name[:QUANT]` when nothing is on disk). */
  auto_download: z.boolean().optional(),
});

/** The operator's settings as given, with a draft model's path made absolute. */
function explicitSettings(input: RunnerSettingsInput): RunnerSettingsInput {
  if (input.draft_model === undefined || input.draft_model === null) return input;
  return { ...input, draft_model: path.resolve(expandHome(input.draft_model)) };
}

async function diskReport(paths: string[]) {
  return Promise.all(
    [...new Set(paths)].map(async (p) => {
      try {
        const s = await statfs(p);
        return { path: p, free_bytes: s.bavail * s.bsize, total_bytes: s.blocks * s.bsize };
      } catch (error) {
        return { path: p, error: (error as Error).message };
      }
    }),
  );
}

export function registerAdminRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (admin) => {
    const sessions = sessionStoreFor(ctx);
    admin.addHook("onRequest", async (request) => requireAdminKey(ctx.config.admin_key, request, (r) => sessionAuthenticates(sessions, r)));
    // every admin answer in one casing (snake_case), whatever the internal types call their fields
    admin.addHook("preSerialization", async (_request, _reply, payload) => snakeCaseKeys(payload));

    admin.get("/admin/models/loaded", async () => {
      const loaded = ctx.scheduler.loaded();
      const withStats = await Promise.all(loaded.map(async (m) => ({ ...m, stats: (await ctx.scheduler.runnerFor(m.id)?.stats()) ?? null })));
      return { object: "list", data: withStats };
    });

    admin.get("/admin/models/available", async () => {
      const all = await ctx.inventory.available();
      const conformance = ctx.conformance.all();
      return {
        object: "list",
        locations: ctx.inventory.locations(),
        data: all.map((m) => ({
          id: m.id,
          aliases: m.aliases,
          source: m.source,
          format: m.format,
          type: m.type,
          architecture: m.architecture,
          parameter_count: m.parameterCount,
          quantization: m.quantization,
          context_length: m.contextLength,
          size_bytes: m.sizeBytes,
          path: m.path,
          local_path: m.localPath,
          complete: m.missing.length === 0 && m.problem === null,
          missing: m.missing,
          problem: m.problem,
          servable: ctx.scheduler.unservableReason(m) === null,
          quarantined: ctx.scheduler.unservableReason(m) === null ? ctx.scheduler.quarantineOf(m).quarantined : false,
          status: ctx.scheduler.unservableReason(m) ? "unavailable" : ctx.scheduler.status(m.id),
          // why the last load or run failed ({code, message, at}), for the dashboard's reason and fix
          last_error: ctx.scheduler.lastError(m.id),
          // how tool calling and structured output went with this model, per template family and backend
          tool_conformance: (conformance.get(m.id) ?? []).map((entry) => ({
            family: entry.family,
            backend: entry.backend,
            ...entry.counts,
            last_at: entry.lastAt,
          })),
        })),
      };
    });

    admin.post("/admin/models/load", async (request, reply) => {
      const { model_id, settings, preset, auto_download } = parseRequest(loadBody, request.body);
      let model = await ctx.inventory.resolve(model_id).catch(async (error: unknown) => {
        if (!auto_download || !(error instanceof LmxError) || error.code !== "model_not_found" || !model_id.includes("/")) throw error;
        return null;
      });
      if (auto_download && (model === null || (model.source === "hf_cache" && model.missing.length > 0))) {
        const job = await startDownload(ctx, downloadRequestFor(model?.id ?? model_id));
        const done = await job.done.catch((e: unknown) => {
          throw asDownloadLmxError(e);
        });
        if (done.status !== "completed") throw new LmxError("download_failed", `the download of '${model_id}' ended ${done.status}`);
        await ctx.inventory.refresh();
        model = await ctx.inventory.resolve(model_id);
      }
      if (!model) throw new LmxError("model_not_found", `the model '${model_id}' does not exist`, { param: "model_id" });
      const unservable = ctx.scheduler.unservableReason(model);
      if (unservable?.code === "download_required") {
        // not an error: the model exists and can be completed; say what is missing and how
        return reply.code(202).send({
          status: "download_required",
          model_id: model.id,
          missing: model.missing,
          local_path: model.localPath,
          hint: model.source === "hf_cache" ? "send auto_download: true, or POST /admin/models/download" : "the files are missing from disk",
        });
      }
      if (unservable) throw unservable;
      const given = explicitSettings(settings ?? {});
      // the draft model is a path from the request: only files the server would serve anyway may be opened
      if (given.draft_model && !ctx.inventory.servesFile(given.draft_model)) {
        throw new LmxError(
          "invalid_value",
          "settings.draft_model must be a GGUF file inside the configured model folders (model_dirs, the HF cache, LM Studio, Ollama) or one the config names",
          { param: "settings.draft_model" },
        );
      }
      // every layer in one place (src/tuning/precedence.ts); what this load sets (its settings, its preset) is
      // kept across crash reloads like any explicit setting, the rest follows the model's layers
      const resolved = ctx.inventory.settingsFor(model, { explicit: given, ...(preset ? { preset } : {}) });
      const { overrides, sources } = pickBySource(resolved, (source) => source === "load" || (preset !== undefined && source.startsWith("preset:")));
      const { runner, reloaded } = await ctx.scheduler.load(model, overrides, sources);
      const view = ctx.scheduler.loaded().find((m) => m.id === model.id);
      return {
        status: "loaded",
        model_id: model.id,
        reloaded,
        pid: runner.pid,
        info: runner.info,
        settings: view?.settings ?? null,
        settings_source: view?.settingsSource ?? resolved.sources,
      };
    });

    admin.post("/admin/models/unload", async (request) => {
      const { model_id } = parseRequest(modelIdBody, request.body);
      const model = await ctx.inventory.resolve(model_id);
      const unloaded = await ctx.scheduler.unload(model.id, ctx.config.shutdown_timeout_sec * 1000);
      return { status: unloaded ? "unloaded" : "not_loaded", model_id: model.id };
    });

    registerDownloadRoutes(admin, ctx, ctx.downloads);
    registerReliabilityRoutes(admin, ctx);
    registerNodeRoutes(admin, ctx);
    registerBenchmarkRoutes(admin, ctx);
    registerEventRoutes(admin, ctx);
    registerAutotuneRoutes(admin, ctx);

    admin.get("/admin/status", async () => ({
      version: ctx.version,
      uptime_sec: Math.round((Date.now() - ctx.startedAt) / 1000),
      ready: ctx.state.ready,
      queue: ctx.scheduler.queueSnapshot(),
      memory: ctx.memory.snapshot(),
      disk: await diskReport([
        ctx.config.state_dir,
        ...ctx.config.model_dirs,
        ...ctx.inventory
          .locations()
          .filter((l) => l.exists)
          .map((l) => l.path),
      ]),
      downloads: ctx.downloads
        .list()
        .map((j) => j.snapshot())
        .filter((s) => s.status === "queued" || s.status === "running"),
      models_available: (await ctx.inventory.list()).length,
      models_loaded: ctx.scheduler.loaded(),
      quarantined: ctx.registry.quarantined(),
      // state writes that failed (full or read-only volume, corrupt file): the server keeps serving without them
      storage: { file: ctx.storage.file, degraded: ctx.storage.problems.length > 0, problems: ctx.storage.problems },
    }));
  });
}
