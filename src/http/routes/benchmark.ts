/**
 * POST /admin/benchmark: runs the `lmx bench` harness against this gateway itself (over loopback HTTP, so the
 * figures include everything a client sees), stores the result in <state_dir>/lmx.db and answers with the
 * report. One benchmark at a time per server: two would measure each other, so a second one gets 409.
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../../api/openai/schemas.js";
import { BenchError, runBenchmark } from "../../bench/driver.js";
import { DEFAULT_GATE_THRESHOLD_PCT, evaluateGate, tunedBaseline, type GateOutcome } from "../../bench/gate.js";
import { workloadKey } from "../../tuning/workloads.js";
import { autotuneFor } from "./autotune.js";
import { BenchStore, benchDbPath, recordReport, settingsKey } from "../../bench/store.js";
import { DEFAULT_WORKLOAD, type Workload } from "../../bench/types.js";
import type { GatewayContext } from "../context.js";

const MAX_LEVELS = 16;

const benchmarkBody = z.strictObject({
  model: z.string().min(1).max(512),
  scenario: z.enum(["throughput", "multiturn"]).optional(),
  endpoint: z.enum(["completions", "chat"]).optional(),
  concurrency: z.array(z.number().int().min(1).max(1024)).min(1).max(MAX_LEVELS).optional(),
  requests: z.number().int().min(1).max(10_000).optional(),
  warmup: z.number().int().min(0).max(100).optional(),
  rounds: z.number().int().min(1).max(20).optional(),
  prompt_tokens: z.number().int().min(1).max(1_000_000).optional(),
  max_tokens: z.number().int().min(1).max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  system_tokens: z.number().int().min(1).max(1_000_000).optional(),
  turns: z.number().int().min(1).max(50).optional(),
  conversations: z.number().int().min(1).max(1_000).optional(),
  timeout_sec: z.number().int().min(1).max(3_600).optional(),
  /** Keep the result in bench_results (default true). */
  store: z.boolean().optional(),
  update_baseline: z.boolean().optional(),
  /** Compare with the stored baseline; the answer carries the outcome (the status stays 200). */
  gate: z.boolean().optional(),
  threshold_pct: z.number().gt(0).lt(100).optional(),
});

export interface BenchmarkRouteOptions {
  /** Where the benchmark sends its requests; default: this server's own listening address. */
  baseUrl?: string;
}

/** Per server, not per process: tests and embedders may run several gateways in one process. */
const running = new WeakMap<GatewayContext, { model: string; startedAt: string }>();

const storedQuery = z.strictObject({
  model: z.string().min(1).max(512).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});

export function registerBenchmarkRoutes(admin: FastifyInstance, ctx: GatewayContext, options: BenchmarkRouteOptions = {}): void {
  // the stored results (newest first), as `lmx bench` and POST /admin/benchmark recorded them: for the dashboard
  admin.get("/admin/benchmarks", async (request) => {
    const query = parseRequest(storedQuery, request.query ?? {});
    const store = BenchStore.open(benchDbPath(ctx.config.state_dir));
    try {
      const rows = store.list({ ...(query.model ? { model: query.model } : {}), limit: query.limit ?? 50 });
      return { object: "list", data: rows.map((row) => ({ ...row, report: JSON.parse(row.report) as unknown })) };
    } finally {
      store.close();
    }
  });

  admin.post("/admin/benchmark", async (request, reply) => {
    const body = parseRequest(benchmarkBody, request.body);
    const model = await ctx.inventory.resolve(body.model);
    if (model.type === "embedding") {
      throw new LmxError("model_is_embedding", `model '${model.id}' is an embedding model; benchmarks measure generation`, { param: "model" });
    }
    const current = running.get(ctx);
    if (current) {
      throw new LmxError(
        "benchmark_in_progress",
        `a benchmark of '${current.model}' is already running on this server (since ${current.startedAt}); wait for it to finish`,
        { retryAfterSec: 30 },
      );
    }
    const startedAt = new Date().toISOString();
    running.set(ctx, { model: model.id, startedAt });
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.on("close", onClose);
    try {
      const workload = workloadOf(body);
      const baseUrl = options.baseUrl ?? selfUrl(admin);
      ctx.log.info({ model: model.id, workload }, "benchmark started");
      const report = await runBenchmark(
        [{ label: "A", url: baseUrl, model: model.id, apiKey: ctx.config.api_keys[0] ?? null, adminKey: ctx.config.admin_key ?? null }],
        workload,
        { onProgress: (line) => ctx.log.debug({ model: model.id }, line), signal: abort.signal },
      ).catch((error: unknown) => {
        if (error instanceof BenchError) throw new LmxError("invalid_request", `the benchmark could not run: ${error.message}`);
        throw error;
      });
      const target = report.targets[0]!;
      const errors = target.levels.reduce((s, l) => s + l.errors, 0);
      let gate: GateOutcome | null = null;
      const storedIds: number[] = [];
      const wantsStore = body.store !== false || body.update_baseline === true;
      if (wantsStore || body.gate) {
        const store = BenchStore.open(benchDbPath(ctx.config.state_dir));
        try {
          if (body.gate) {
            gate = evaluateGate(
              target.avg_output_tok_s,
              errors,
              // the tuned profile in use, measured on this workload, else the stored baseline
              tunedBaseline(
                target.info.tuned_profile_id ? autotuneFor(ctx).profiles.get(target.info.tuned_profile_id) : null,
                workloadKey(workload),
              ) ?? store.baseline(target.model, settingsKey(workload, target)),
              body.threshold_pct ?? DEFAULT_GATE_THRESHOLD_PCT,
            );
          }
          if (wantsStore) {
            const baselineFor = new Set(body.update_baseline && errors === 0 ? [target.label] : []);
            for (const row of recordReport(store, report, "admin", baselineFor)) storedIds.push(row.id);
          }
        } finally {
          store.close();
        }
      }
      ctx.log.info({ model: model.id, avg_output_tok_s: target.avg_output_tok_s, errors, gate: gate?.status ?? null }, "benchmark finished");
      return { object: "benchmark", ...report, gate, stored_ids: storedIds, baseline_recorded: body.update_baseline === true && errors === 0 };
    } finally {
      reply.raw.off("close", onClose);
      running.delete(ctx);
    }
  });
}

function workloadOf(body: z.output<typeof benchmarkBody>): Workload {
  const scenario = body.scenario ?? "throughput";
  const endpoint = body.endpoint ?? (scenario === "multiturn" ? "chat" : DEFAULT_WORKLOAD.endpoint);
  if (scenario === "multiturn" && endpoint !== "chat") {
    throw new LmxError("invalid_value", "the multiturn scenario needs endpoint 'chat'", { param: "endpoint" });
  }
  return {
    scenario,
    endpoint,
    promptTokens: body.prompt_tokens ?? DEFAULT_WORKLOAD.promptTokens,
    maxTokens: body.max_tokens ?? (scenario === "multiturn" ? 64 : DEFAULT_WORKLOAD.maxTokens),
    concurrency: body.concurrency ?? (scenario === "multiturn" ? [1] : DEFAULT_WORKLOAD.concurrency),
    requests: body.requests ?? null,
    warmup: body.warmup ?? DEFAULT_WORKLOAD.warmup,
    rounds: body.rounds ?? DEFAULT_WORKLOAD.rounds,
    temperature: body.temperature ?? null,
    // our own server accepts ignore_eos (both engines): output length is forced, as against peers
    ignoreEos: true,
    timeoutMs: (body.timeout_sec ?? DEFAULT_WORKLOAD.timeoutMs / 1000) * 1000,
    systemTokens: body.system_tokens ?? DEFAULT_WORKLOAD.systemTokens,
    turns: body.turns ?? DEFAULT_WORKLOAD.turns,
    conversations: body.conversations ?? null,
  };
}

/** This server's own address; a wildcard bind is reached over loopback. */
function selfUrl(admin: FastifyInstance): string {
  const address = admin.server.address() as AddressInfo | string | null;
  if (!address || typeof address === "string") throw new LmxError("internal_error", "the server has no TCP address to benchmark");
  let host = address.address;
  if (host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}
