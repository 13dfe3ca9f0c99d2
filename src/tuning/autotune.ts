/**
 * Autotune jobs: one search at a time per server (two would measure each other: a second one gets 409), run in
 * the background; callers poll the job (GET /admin/autotune/jobs/{id}) for progress and the result.
 *
 * Each candidate is a runner of its own, started through the normal backend seam by Scheduler.trial (never the
 * runner that serves, the same memory budget, never evicting) and measured in-process with the bench driver
 * over the runner's own socket. A candidate that fails to load, crashes, or fails its requests is recorded in
 * the compatibility registry (marked as a trial: it never quarantines the model) and skipped.
 */
import { randomUUID } from "node:crypto";
import type { RunnerSettingsInput } from "../config/schema.js";
import type { Backend, RunnerHandle } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import type { Inventory } from "../inventory/inventory.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { CompatibilityRegistry } from "../state/compatibility-registry.js";
import { BenchError, runBenchmark } from "../bench/driver.js";
import type { Workload } from "../bench/types.js";
import type { ProfileStore, TunedProfile } from "./profiles.js";
import type { MachineSignature } from "./machine.js";
import { metricsOf, SCORE_VERSION, type CandidateMetrics } from "./score.js";
import { CandidateSkipped, runSearch, type CandidateRecord, type SearchProgress, type SearchResult } from "./search.js";
import { tunablesFor, type Tunable } from "./tunables.js";
import { resolveWorkload, type WorkloadInput } from "./workloads.js";

export interface AutotuneRequest {
  modelId: string;
  workload?: WorkloadInput;
  budgetSec: number;
  dryRun: boolean;
  /** Settings to try besides the grid's (an operator's own guesses). */
  candidates?: RunnerSettingsInput[];
  /** Only these axes (tunable names, GET /admin/autotune/tunables); absent: all of the backend's. */
  axes?: string[];
}

export type JobStatus = "running" | "completed" | "failed";

export interface AutotuneJobView {
  id: string;
  modelId: string;
  backend: string | null;
  status: JobStatus;
  startedAt: string;
  finishedAt: string | null;
  workload: string;
  budgetSec: number;
  dryRun: boolean;
  progress: Omit<SearchProgress, "candidate"> | null;
  candidates: CandidateRecord[];
  result: {
    profileId: number | null;
    applied: boolean;
    winner: CandidateRecord | null;
    baseline: CandidateRecord | null;
    settings: RunnerSettingsInput;
    /** The winner's score and tok/s over the current settings', in percent. */
    scoreGainPct: number | null;
    tokSGainPct: number | null;
    stoppedEarly: boolean;
  } | null;
  error: { code: string; message: string } | null;
}

export interface AutotuneDeps {
  scheduler: Scheduler;
  inventory: Inventory;
  registry: CompatibilityRegistry;
  profiles: ProfileStore;
  machine: MachineSignature;
  loaderTimeoutMs: number;
  maxBudgetSec: number;
  log: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
}

const KEEP_JOBS = 20;
/** After the last request of a candidate: how long a dying runner has to be seen dead (a crash, not a slow exit). */
const EXIT_GRACE_MS = 300;

export class AutotuneService {
  private readonly jobs = new Map<string, AutotuneJobView>();
  private running: AutotuneJobView | null = null;

  constructor(private readonly deps: AutotuneDeps) {}

  job(id: string): AutotuneJobView | null {
    return this.jobs.get(id) ?? null;
  }

  /** Starts a search in the background; 409 while another runs. Resolves once the job exists, not when it ends. */
  async start(request: AutotuneRequest): Promise<{ job: AutotuneJobView; done: Promise<AutotuneJobView> }> {
    if (this.running) {
      throw new LmxError(
        "autotune_in_progress",
        `an autotune of '${this.running.modelId}' is already running on this server (job ${this.running.id}, since ${this.running.startedAt}); wait for it to finish`,
        { retryAfterSec: 30 },
      );
    }
    if (request.budgetSec > this.deps.maxBudgetSec) {
      throw new LmxError("invalid_value", `budget_sec is at most ${this.deps.maxBudgetSec} here (autotune.max_budget_sec)`, { param: "budget_sec" });
    }
    const workload = resolveWorkload(request.workload);
    // claimed before the first await: a second request arriving meanwhile gets 409
    const claim = { modelId: request.modelId, id: "(starting)", startedAt: new Date().toISOString() } as AutotuneJobView;
    this.running = claim;
    let prepared;
    try {
      prepared = await this.prepare(request);
    } catch (error) {
      this.running = null;
      throw error;
    }
    const job: AutotuneJobView = {
      id: randomUUID(),
      modelId: prepared.model.id,
      backend: prepared.backend.name,
      status: "running",
      startedAt: new Date().toISOString(),
      finishedAt: null,
      workload: workload.name,
      budgetSec: request.budgetSec,
      dryRun: request.dryRun,
      progress: null,
      candidates: [],
      result: null,
      error: null,
    };
    this.running = job;
    this.jobs.set(job.id, job);
    while (this.jobs.size > KEEP_JOBS) this.jobs.delete(this.jobs.keys().next().value as string);
    const done = this.run(job, request, workload, prepared)
      .catch((error: unknown) => {
        const lmx = error instanceof LmxError ? error : new LmxError("internal_error", String((error as Error)?.message ?? error));
        job.status = "failed";
        job.error = { code: lmx.code, message: lmx.message };
        this.deps.log("error", "autotune failed", { model: job.modelId, job: job.id, code: lmx.code, message: lmx.message });
      })
      .finally(() => {
        job.finishedAt = new Date().toISOString();
        if (this.running === job) this.running = null;
      })
      .then(() => job);
    return { job, done };
  }

  /** The model, its backend and the axes to search, checked before a job exists: a bad request is a 4xx, not a failed job. */
  private async prepare(request: AutotuneRequest): Promise<{ model: ModelDescriptor; backend: Backend; tunables: readonly Tunable[] }> {
    const { scheduler, inventory } = this.deps;
    const model = await inventory.resolve(request.modelId);
    const unservable = scheduler.unservableReason(model);
    if (unservable) throw unservable;
    if (model.type === "embedding")
      throw new LmxError("model_is_embedding", `'${model.id}' is an embedding model; autotune measures generation`, { param: "model_id" });
    const backend = scheduler.candidates(model)[0];
    if (!backend)
      throw new LmxError("backend_unavailable", `no backend here can load '${model.id}' (quarantined or none opens it)`, { param: "model_id" });
    const all = tunablesFor(backend.name);
    const unknown = (request.axes ?? []).filter((a) => !all.some((t) => t.name === a));
    if (unknown.length > 0) {
      throw new LmxError("invalid_value", `unknown axes for ${backend.name}: ${unknown.join(", ")}; known: ${all.map((t) => t.name).join(", ")}`, {
        param: "axes",
      });
    }
    return { model, backend, tunables: request.axes ? all.filter((t) => request.axes!.includes(t.name)) : all };
  }

  private async run(
    job: AutotuneJobView,
    request: AutotuneRequest,
    named: ReturnType<typeof resolveWorkload>,
    { model, backend, tunables }: { model: ModelDescriptor; backend: Backend; tunables: readonly Tunable[] },
  ): Promise<void> {
    const context = {
      cores: this.deps.machine.cores,
      gpu: model.settings.gpu !== "cpu" && this.deps.scheduler.gpuPresent,
      concurrency: Math.max(...named.workload.concurrency),
      base: model.settings,
    };
    this.deps.log("info", "autotune started", {
      model: model.id,
      backend: backend.name,
      workload: named.name,
      budget_sec: request.budgetSec,
      job: job.id,
    });
    let serial = 0;
    const result = await runSearch(
      {
        tunables,
        context,
        workload: named.workload,
        budgetMs: request.budgetSec * 1000,
        ...(request.candidates ? { extra: request.candidates } : {}),
      },
      (settings, workload, label) => this.measure(job, model, backend, settings, workload, label, ++serial),
      (progress) => {
        const { candidate, ...rest } = progress;
        job.progress = rest;
        if (candidate) job.candidates.push(candidate);
      },
    );
    job.result = this.conclude(job, model, backend, named, result, request.dryRun);
    job.status = "completed";
    this.deps.log("info", "autotune finished", { model: model.id, job: job.id, profile: job.result.profileId, applied: job.result.applied });
  }

  private async measure(
    job: AutotuneJobView,
    model: ModelDescriptor,
    backend: Backend,
    settings: RunnerSettingsInput,
    workload: Workload,
    label: string,
    serial: number,
  ): Promise<CandidateMetrics> {
    const resolved = this.deps.inventory.settingsFor(model, { explicit: settings });
    const descriptor: ModelDescriptor = { ...model, settings: resolved.settings, settingsSource: resolved.sources };
    const key = this.deps.scheduler.keyFor(model, backend);
    const started = Date.now();
    let recorded = false;
    const fail = (lmx: LmxError, extra: Record<string, unknown>): never => {
      recorded = true;
      this.deps.registry.record(key, "failure", {
        reason: lmx.code,
        message: lmx.message,
        durationMs: Date.now() - started,
        metadata: { trial: "autotune", job: job.id, candidate: label, settings, ...extra },
      });
      throw lmx;
    };
    try {
      return await this.deps.scheduler.trial(
        descriptor,
        backend,
        { token: `autotune:${job.id}:${serial}`, loaderTimeoutMs: model.loaderTimeoutMs ?? this.deps.loaderTimeoutMs },
        async (runner) => {
          let levels;
          try {
            const report = await runBenchmark(
              [{ label: "candidate", url: "http://runner", model: model.id, apiKey: null, adminKey: null, dispatcher: runner.dispatcher }],
              workload,
            );
            levels = report.targets[0]!.levels;
          } catch (error) {
            const crash = await crashOf(runner);
            if (crash) return fail(crash.error, crash.details);
            const message = error instanceof BenchError ? error.message : String((error as Error)?.message ?? error);
            return fail(new LmxError("model_probe_failed", `the candidate could not be measured: ${message}`), { phase: "measure" });
          }
          const crash = await crashOf(runner);
          if (crash) return fail(crash.error, crash.details);
          return metricsOf(levels);
        },
      );
    } catch (error) {
      if (recorded) throw error;
      const lmx = error instanceof LmxError ? error : new LmxError("model_loader_crashed", String((error as Error)?.message ?? error));
      // not the candidate's doing: the budget has no room for it next to the models that serve
      if (lmx.code === "insufficient_memory") throw new CandidateSkipped(lmx.message);
      return fail(lmx, { phase: "load" });
    }
  }

  private conclude(
    job: AutotuneJobView,
    model: ModelDescriptor,
    backend: Backend,
    named: ReturnType<typeof resolveWorkload>,
    result: SearchResult,
    dryRun: boolean,
  ): NonNullable<AutotuneJobView["result"]> {
    const { winner, baseline } = result;
    const gain = (a: number | null | undefined, b: number | null | undefined) =>
      a === null || a === undefined || b === null || b === undefined || b === 0 ? null : Math.round(((a - b) / Math.abs(b)) * 1000) / 10;
    const usable = winner !== null && winner.metrics !== null && winner.metrics.error_rate === 0;
    let profile: TunedProfile | null = null;
    if (usable) {
      profile = this.deps.profiles.record({
        modelId: model.id,
        backend: backend.name,
        backendVersion: backend.version,
        machine: this.deps.machine.id,
        status: dryRun ? "dry_run" : "applied",
        settings: result.winnerSettings,
        metrics: winner.metrics!,
        score: winner.score!,
        scoreVersion: SCORE_VERSION,
        workload: { name: named.name, key: named.key, spec: { ...named.workload } },
        baseline: baseline && baseline.metrics ? { metrics: baseline.metrics, score: baseline.score! } : null,
        candidates: result.candidates,
        jobId: job.id,
      });
    }
    return {
      profileId: profile?.id ?? null,
      applied: profile !== null && !dryRun,
      winner,
      baseline,
      settings: result.winnerSettings,
      scoreGainPct: gain(winner?.score, baseline?.score),
      tokSGainPct: gain(winner?.metrics?.tok_s, baseline?.metrics?.tok_s),
      stoppedEarly: result.stoppedEarly,
    };
  }
}

/** The runner's crash, if it died (not stopped by us) during or right after the measurement. */
async function crashOf(runner: RunnerHandle): Promise<{ error: LmxError; details: Record<string, unknown> } | null> {
  const exit = runner.exit ?? (await Promise.race([runner.exited, new Promise<null>((r) => setTimeout(() => r(null), EXIT_GRACE_MS))]));
  if (!exit || exit.reason === "stopped") return null;
  return {
    error: exit.reason,
    details: { phase: "measure", signal: exit.signal, exitCode: exit.code, stderrTail: exit.stderrTail.slice(-10) },
  };
}
