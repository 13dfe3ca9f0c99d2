/**
 * Which models have runners, and getting one when a request needs it: exactly one load per model at a time
 * (everyone else awaits the same promise), just-in-time loads, and reload after a crash.
 */
import { EventEmitter } from "node:events";
import type { Backend, RunnerExit, RunnerHandle, StartOptions } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { MemoryEstimate, ResolvedRunnerSettings } from "../runners/protocol.js";
import { MemoryBudget, Mutex } from "./memory-budget.js";

const KEEP_ALIVE_SWEEP_MS = 250;

export type ModelStatus = "loaded" | "loading" | "available";

interface ModelState {
  descriptor: ModelDescriptor;
  runner: RunnerHandle | null;
  loading: Promise<RunnerHandle> | null;
  lastUsed: number;
  requestsServed: number;
  loads: number;
  lastError: { code: string; message: string; at: string } | null;
  /** A model someone asked to keep loaded (auto_load, admin load, or a JIT load): reloaded after a crash. */
  wanted: boolean;
  /** Settings an operator chose for this model's runner with an explicit load; kept across crash reloads. */
  overrides: Partial<ResolvedRunnerSettings>;
}

export interface ModelManagerOptions {
  jitLoad: boolean;
  start: Omit<StartOptions, "log" | "admit">;
  log: StartOptions["log"];
  memory: MemoryBudget;
  eviction: boolean;
  maxLoadedModels: number | null;
  /** Requests running or waiting for a model: a model with any is never evicted or unloaded for idleness. */
  activity: (id: string) => number;
  /** Grace period for in-flight requests when a model is unloaded. */
  unloadGraceMs: number;
}

export interface LoadedModelView {
  id: string;
  pid: number;
  backend: string;
  backendVersion: string;
  path: string;
  type: string;
  contextSize: number;
  parallel: number;
  threads: number;
  gpu: string | false;
  loadMs: number;
  uptimeSec: number;
  idleSec: number;
  requestsServed: number;
  loads: number;
  memory: RunnerHandle["info"]["memory"];
  estimate: RunnerHandle["info"]["estimate"];
  reservedBytes: number;
  pinned: boolean;
  keepAliveSec: number | null;
}

export interface ModelLoadEvent {
  model: string;
  backend: string;
  outcome: "success" | "failure";
  code: string | null;
  durationMs: number;
}

export interface ModelUnloadEvent {
  model: string;
  reason: string;
}

/** Emits "load" (ModelLoadEvent) after every load attempt and "unload" (ModelUnloadEvent) after every unload or runner death. */
export class ModelManager extends EventEmitter {
  private readonly states = new Map<string, ModelState>();
  private readonly admissionLock = new Mutex();
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly backends: readonly Backend[],
    private readonly options: ModelManagerOptions,
  ) {
    super();
    this.sweeper = setInterval(() => this.unloadIdle(), KEEP_ALIVE_SWEEP_MS);
    this.sweeper.unref();
  }

  status(id: string): ModelStatus {
    const state = this.states.get(id);
    if (state?.runner && !state.runner.exit) return "loaded";
    if (state?.loading) return "loading";
    return "available";
  }

  lastError(id: string): ModelState["lastError"] {
    return this.states.get(id)?.lastError ?? null;
  }

  /** Returns a ready runner, loading it if allowed. `explicit` marks admin or start-up loads. */
  async ensureLoaded(descriptor: ModelDescriptor, explicit = false): Promise<RunnerHandle> {
    if (this.closed) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
    const state = this.stateFor(descriptor);
    if (state.runner && !state.runner.exit) return state.runner;
    if (state.loading) return state.loading;
    if (!explicit && !state.wanted && !this.options.jitLoad) {
      throw new LmxError("model_not_loaded", `model '${descriptor.id}' is not loaded and jit_load is off; load it with POST /admin/models/load`, {
        param: "model",
      });
    }
    state.wanted = true;
    state.loading = this.startRunner(state).finally(() => {
      state.loading = null;
    });
    return state.loading;
  }

  /**
   * An operator's explicit load, optionally with different runner settings. Requests never change a runner's
   * settings; only this does, and a loaded runner with other settings is replaced (drained first).
   */
  async loadWithSettings(descriptor: ModelDescriptor, overrides: Partial<ResolvedRunnerSettings>): Promise<{ runner: RunnerHandle; reloaded: boolean }> {
    const state = this.stateFor(descriptor);
    if (state.loading) await state.loading.catch(() => {});
    const wanted = { ...state.overrides, ...overrides };
    const current = state.runner && !state.runner.exit ? state.runner : null;
    const differs = (Object.keys(overrides) as Array<keyof ResolvedRunnerSettings>).some(
      (key) => JSON.stringify(this.effectiveSettings(state)[key]) !== JSON.stringify(wanted[key]),
    );
    if (current && !differs) return { runner: current, reloaded: false };
    if (current) await this.unload(descriptor.id, this.options.unloadGraceMs, "reloaded with new settings");
    state.overrides = wanted;
    return { runner: await this.ensureLoaded(descriptor, true), reloaded: current !== null };
  }

  private effectiveSettings(state: ModelState): ResolvedRunnerSettings {
    return { ...state.descriptor.settings, ...state.overrides };
  }

  /** Marks a model as used now; call when a request starts and when it ends (keep_alive counts from the end). */
  touch(id: string, finished = false): void {
    const state = this.states.get(id);
    if (state) {
      state.lastUsed = Date.now();
      if (finished) state.requestsServed++;
    }
  }

  runnerFor(id: string): RunnerHandle | null {
    const runner = this.states.get(id)?.runner;
    return runner && !runner.exit ? runner : null;
  }

  async unload(id: string, graceMs: number, reason = "requested"): Promise<boolean> {
    const state = this.states.get(id);
    if (!state) return false;
    state.wanted = false;
    if (state.loading) await state.loading.catch(() => {});
    const runner = state.runner;
    // from here on new requests start a fresh runner instead of joining one that is draining
    state.runner = null;
    if (!runner || runner.exit) return false;
    await runner.stop(graceMs);
    this.options.memory.release(id);
    this.options.log("info", "model unloaded", { model: id, reason });
    this.emit("unload", { model: id, reason } satisfies ModelUnloadEvent);
    return true;
  }

  loaded(): LoadedModelView[] {
    const now = Date.now();
    const views: LoadedModelView[] = [];
    for (const [id, state] of this.states) {
      const runner = state.runner;
      if (!runner || runner.exit) continue;
      const info = runner.info;
      views.push({
        id,
        pid: runner.pid,
        backend: info.backend,
        backendVersion: info.backendVersion,
        path: state.descriptor.path,
        type: state.descriptor.type,
        contextSize: info.contextSize,
        parallel: info.parallel,
        threads: info.threads,
        gpu: info.gpu,
        loadMs: info.loadMs,
        uptimeSec: Math.round((now - runner.startedAt) / 1000),
        idleSec: Math.round((now - (state.lastUsed || runner.startedAt)) / 1000),
        requestsServed: state.requestsServed,
        loads: state.loads,
        memory: info.memory,
        estimate: info.estimate,
        reservedBytes: this.options.memory.reservation(id)?.bytes ?? 0,
        pinned: state.descriptor.pinned,
        keepAliveSec: state.descriptor.keepAliveMs === null ? null : state.descriptor.keepAliveMs / 1000,
      });
    }
    return views;
  }

  get loadingCount(): number {
    let n = 0;
    for (const state of this.states.values()) if (state.loading) n++;
    return n;
  }

  async stopAll(graceMs: number): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.all([...this.states.keys()].map((id) => this.unload(id, graceMs)));
  }

  private stateFor(descriptor: ModelDescriptor): ModelState {
    let state = this.states.get(descriptor.id);
    if (!state) {
      state = { descriptor, runner: null, loading: null, lastUsed: 0, requestsServed: 0, loads: 0, lastError: null, wanted: false, overrides: {} };
      this.states.set(descriptor.id, state);
    } else if (!state.runner) {
      // settings or path may have changed in the inventory since the last load
      state.descriptor = descriptor;
    }
    return state;
  }

  private async startRunner(state: ModelState): Promise<RunnerHandle> {
    const descriptor = { ...state.descriptor, settings: this.effectiveSettings(state) };
    const backend = this.backends.find((b) => b.canServe(descriptor));
    if (!backend) {
      throw new LmxError("backend_unavailable", `no backend on this machine can open '${descriptor.path}'`);
    }
    const started = Date.now();
    this.options.log("info", "loading model", { model: descriptor.id, path: descriptor.path, backend: backend.name, settings: descriptor.settings });
    let runner: RunnerHandle;
    try {
      runner = await backend.start(descriptor, {
        ...this.options.start,
        log: this.options.log,
        admit: (estimate) => this.admit(state, estimate),
      });
    } catch (error) {
      this.options.memory.release(descriptor.id);
      const lmx = error instanceof LmxError ? error : new LmxError("model_loader_crashed", String((error as Error)?.message ?? error));
      state.lastError = { code: lmx.code, message: lmx.message, at: new Date().toISOString() };
      this.emit("load", { model: descriptor.id, backend: backend.name, outcome: "failure", code: lmx.code, durationMs: Date.now() - started } satisfies ModelLoadEvent);
      this.options.log("error", "model load failed", { model: descriptor.id, code: lmx.code, message: lmx.message, details: lmx.details });
      throw lmx;
    }
    state.loads++;
    state.runner = runner;
    const measured = runner.info.memory.modelRam + runner.info.memory.contextRam + this.options.memory.runnerOverheadBytes;
    this.options.memory.reserve(descriptor.id, measured, "actual");
    state.lastUsed = Date.now();
    this.options.log("info", "model loaded", { model: descriptor.id, ms: Date.now() - started, pid: runner.pid });
    this.emit("load", { model: descriptor.id, backend: backend.name, outcome: "success", code: null, durationMs: Date.now() - started } satisfies ModelLoadEvent);
    void runner.exited.then((exit) => this.onRunnerExit(state, runner, exit));
    if (this.closed) {
      await runner.stop(0);
      throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
    }
    return runner;
  }

  /**
   * Admission of one load: fits the budget (and max_loaded_models) as things are, or after evicting idle,
   * unpinned models least recently used first; otherwise 507 with the numbers. One decision at a time.
   */
  private admit(state: ModelState, estimate: MemoryEstimate): Promise<void> {
    return this.admissionLock.run(async () => {
      const id = state.descriptor.id;
      const memory = this.options.memory;
      const need = estimate.ram + memory.runnerOverheadBytes;
      const mb = (bytes: number) => `${Math.ceil(bytes / 1048576)} MiB`;
      const refuse = (why: string) =>
        new LmxError("insufficient_memory", `cannot load '${id}': ${why}`, {
          details: { estimate_bytes: need, budget_bytes: memory.budgetBytes, used_bytes: memory.usedBytes },
        });
      if (need > memory.budgetBytes) {
        throw refuse(`it needs an estimated ${mb(need)} and the whole memory budget is ${mb(memory.budgetBytes)} (memory.max_percent / memory.budget_bytes)`);
      }
      const tooMany = () => this.options.maxLoadedModels !== null && this.loadedOrLoadingExcept(id) >= this.options.maxLoadedModels;
      while (!memory.fits(need) || tooMany()) {
        const victim = this.options.eviction ? this.evictionCandidate(id) : null;
        if (!victim) {
          const why = tooMany()
            ? `max_loaded_models (${this.options.maxLoadedModels}) are loaded and none is idle and unpinned${this.options.eviction ? "" : " (eviction is off)"}`
            : `it needs an estimated ${mb(need)}; ${mb(memory.budgetBytes - memory.usedBytes)} of the ${mb(memory.budgetBytes)} budget is free and no idle, unpinned model can be evicted${this.options.eviction ? "" : " (memory.eviction is off)"}`;
          throw refuse(why);
        }
        await this.unload(victim.descriptor.id, this.options.unloadGraceMs, `evicted to make room for '${id}'`);
      }
      memory.reserve(id, need, "estimate");
      this.options.log("info", "load admitted", { model: id, estimate_bytes: need, used_bytes: memory.usedBytes, budget_bytes: memory.budgetBytes });
    });
  }

  private loadedOrLoadingExcept(id: string): number {
    let n = 0;
    for (const [other, state] of this.states) {
      if (other !== id && ((state.runner && !state.runner.exit) || state.loading)) n++;
    }
    return n;
  }

  private evictionCandidate(forId: string): ModelState | null {
    let best: ModelState | null = null;
    for (const [id, state] of this.states) {
      if (id === forId || state.descriptor.pinned || !state.runner || state.runner.exit || state.loading) continue;
      if (this.options.activity(id) > 0) continue;
      if (!best || state.lastUsed < best.lastUsed) best = state;
    }
    return best;
  }

  private unloadIdle(): void {
    const now = Date.now();
    for (const [id, state] of this.states) {
      const ttl = state.descriptor.keepAliveMs;
      if (ttl === null || state.descriptor.pinned || !state.runner || state.runner.exit || state.loading) continue;
      if (this.options.activity(id) > 0 || now - state.lastUsed < ttl) continue;
      void this.unload(id, this.options.unloadGraceMs, "idle past keep_alive");
    }
  }

  private onRunnerExit(state: ModelState, runner: RunnerHandle, exit: RunnerExit): void {
    if (state.runner === runner) {
      state.runner = null;
      this.options.memory.release(state.descriptor.id);
    }
    if (exit.reason !== "stopped") {
      state.lastError = { code: exit.reason.code, message: exit.reason.message, at: new Date().toISOString() };
      this.emit("unload", { model: state.descriptor.id, reason: exit.reason.code } satisfies ModelUnloadEvent);
    }
  }
}
