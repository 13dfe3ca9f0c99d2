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
import { unservableReason } from "../inventory/inventory.js";
import { machineKey, type CompatibilityKey, type CompatibilityRegistry } from "../state/compatibility-registry.js";

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
  /** The backend and compatibility key of the current runner, so its death is recorded against the right key. */
  servedBy: { backend: Backend; key: CompatibilityKey } | null;
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
  registry: CompatibilityRegistry;
  quarantineAfter: number;
  /** Backend names in preference order. */
  backendOrder: string[];
  allowUnsupportedRuntime: boolean;
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

/** Failures that say nothing about whether this backend can run this model: they never fall through or quarantine. */
const NOT_THE_BACKENDS_FAULT = new Set<string>(["insufficient_memory", "server_shutting_down"]);

export interface ProbeResult {
  backend: string;
  backendVersion: string;
  outcome: "success" | "failure" | "skipped";
  reason: string | null;
  message: string | null;
  loadMs: number | null;
  canaryTokensPerSec: number | null;
}

/** Architecture and quantization family (Q4_K_M → Q4_K), the part of a model that decides what a backend must support. */
export function runtimeSignature(model: ModelDescriptor): string {
  const family = model.quantization ? model.quantization.replace(/_(XXS|XS|S|M|L|XL)$/i, "") : "unknown";
  return `${model.architecture ?? "unknown"}/${family}`;
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
      state = { descriptor, runner: null, loading: null, lastUsed: 0, requestsServed: 0, loads: 0, lastError: null, wanted: false, overrides: {}, servedBy: null };
      this.states.set(descriptor.id, state);
    } else if (!state.runner) {
      // settings or path may have changed in the inventory since the last load
      state.descriptor = descriptor;
    }
    return state;
  }

  /**
   * Tries the candidate backends in policy order: a quarantined combination is refused fast (unless
   * allow_unsupported_runtime), a failed load falls through to the next candidate, and every attempt is recorded.
   * Failures that are not the backend's fault (memory, a bad file, shutdown) do not fall through.
   */
  private async startRunner(state: ModelState, allowUnsupported = this.options.allowUnsupportedRuntime): Promise<RunnerHandle> {
    const descriptor = { ...state.descriptor, settings: this.effectiveSettings(state) };
    const candidates = this.candidates(descriptor, allowUnsupported);
    if (candidates.length === 0) {
      if (descriptor.settings.draftModel) {
        throw new LmxError(
          "backend_unavailable",
          `'${descriptor.id}' is configured with a draft model (speculative decoding), which only the llama-server engine runs, and there is none here: lmx engines build llama-server, or remove draft_model`,
        );
      }
      throw new LmxError("backend_unavailable", `no backend on this machine can open '${descriptor.path}' (${descriptor.format})`);
    }
    const registry = this.options.registry;
    const fileProblem = unservableReason(descriptor);
    if (fileProblem?.code === "model_file_invalid") {
      // the file itself is bad: no backend will do better, but the attempt is remembered and counts toward quarantine
      const key = this.keyFor(descriptor, candidates[0]!);
      const quarantine = registry.quarantine(key);
      if (quarantine.quarantined && !allowUnsupported) throw this.refuseQuarantined(descriptor, key, quarantine.lastReasons);
      registry.record(key, "failure", { reason: fileProblem.code, message: fileProblem.message, durationMs: 0 });
      this.noteFailure(state, candidates[0]!.name, fileProblem, 0);
      throw fileProblem;
    }
    let lastError: LmxError | null = null;
    let quarantinedReasons: string[] | null = null;
    for (const backend of candidates) {
      const key = this.keyFor(descriptor, backend);
      const quarantine = registry.quarantine(key);
      if (quarantine.quarantined && !allowUnsupported) {
        registry.record(key, "refused", { reason: "model_quarantined", message: `last failures: ${quarantine.lastReasons.join(", ")}` });
        quarantinedReasons ??= quarantine.lastReasons;
        continue;
      }
      const started = Date.now();
      this.options.log("info", "loading model", { model: descriptor.id, path: descriptor.path, backend: backend.name, settings: descriptor.settings });
      let runner: RunnerHandle;
      try {
        runner = await backend.start(descriptor, {
          ...this.options.start,
          loaderTimeoutMs: descriptor.loaderTimeoutMs ?? this.options.start.loaderTimeoutMs,
          log: this.options.log,
          admit: (estimate) => this.admit(state, estimate),
        });
      } catch (error) {
        this.options.memory.release(descriptor.id);
        const lmx = error instanceof LmxError ? error : new LmxError("model_loader_crashed", String((error as Error)?.message ?? error));
        const durationMs = Date.now() - started;
        if (NOT_THE_BACKENDS_FAULT.has(lmx.code)) {
          registry.record(key, "refused", { reason: lmx.code, message: lmx.message, durationMs });
          throw lmx;
        }
        registry.record(key, "failure", {
          reason: lmx.code,
          message: lmx.message,
          durationMs,
          metadata: { timeoutMs: descriptor.loaderTimeoutMs ?? this.options.start.loaderTimeoutMs, ...(lmx.details ?? {}) },
        });
        this.noteFailure(state, backend.name, lmx, durationMs);
        lastError = lmx;
        if (lmx.code === "model_file_invalid") throw lmx;
        continue;
      }
      const durationMs = Date.now() - started;
      registry.record(key, "success", {
        durationMs,
        metadata: {
          timeoutMs: descriptor.loaderTimeoutMs ?? this.options.start.loaderTimeoutMs,
          canary: runner.info.canary,
          estimate: runner.info.estimate,
          memory: runner.info.memory,
          pid: runner.pid,
        },
      });
      state.loads++;
      state.runner = runner;
      state.servedBy = { backend, key };
      const measured = runner.info.memory.modelRam + runner.info.memory.contextRam + this.options.memory.runnerOverheadBytes;
      this.options.memory.reserve(descriptor.id, measured, "actual");
      state.lastUsed = Date.now();
      this.options.log("info", "model loaded", { model: descriptor.id, backend: backend.name, ms: durationMs, pid: runner.pid });
      this.emit("load", { model: descriptor.id, backend: backend.name, outcome: "success", code: null, durationMs } satisfies ModelLoadEvent);
      void runner.exited.then((exit) => this.onRunnerExit(state, runner, exit));
      if (this.closed) {
        await runner.stop(0);
        throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
      }
      return runner;
    }
    if (lastError) throw lastError;
    throw this.refuseQuarantined(descriptor, null, quarantinedReasons ?? []);
  }

  private noteFailure(state: ModelState, backend: string, error: LmxError, durationMs: number): void {
    state.lastError = { code: error.code, message: error.message, at: new Date().toISOString() };
    this.emit("load", { model: state.descriptor.id, backend, outcome: "failure", code: error.code, durationMs } satisfies ModelLoadEvent);
    this.options.log("error", "model load failed", { model: state.descriptor.id, backend, code: error.code, message: error.message, details: error.details });
  }

  private refuseQuarantined(descriptor: ModelDescriptor, key: CompatibilityKey | null, reasons: string[]): LmxError {
    if (key) this.options.registry.record(key, "refused", { reason: "model_quarantined", message: `last failures: ${reasons.join(", ")}` });
    return new LmxError(
      "model_quarantined",
      `model '${descriptor.id}' is quarantined after ${this.options.quarantineAfter} consecutive failed loads (last: ${reasons.join(", ") || "unknown"}); POST /admin/models/unquarantine to try again`,
      { param: "model", details: { lastReasons: reasons } },
    );
  }

  /** Backends that can open the model, in configured order; by default those whose last attempt failed go last. */
  candidates(descriptor: ModelDescriptor, allowUnsupported = this.options.allowUnsupportedRuntime): Backend[] {
    const order = this.options.backendOrder;
    const rank = (b: Backend) => {
      const index = order.indexOf(b.name);
      return index === -1 ? order.length : index;
    };
    const able = this.backends.filter((b) => b.canServe(descriptor)).sort((a, b) => rank(a) - rank(b));
    if (allowUnsupported) return able;
    // A backend whose last load failed goes last. A crash after a good load does not demote it: one OOM kill of
    // the fast engine must not leave a model on the slower one for good (crashes still count toward quarantine).
    const failedLoad = new Set(
      this.options.registry
        .latest(descriptor.id)
        .filter((r) => r.outcome === "failure" && r.reason !== "model_crashed")
        .map((r) => r.backend),
    );
    return [...able.filter((b) => !failedLoad.has(b.name)), ...able.filter((b) => failedLoad.has(b.name))];
  }

  keyFor(descriptor: ModelDescriptor, backend: Backend): CompatibilityKey {
    return { modelId: descriptor.id, backend: backend.name, backendVersion: backend.version, runtimeSignature: runtimeSignature(descriptor), ...machineKey() };
  }

  /** Whether any candidate of this model is quarantined (for listings). */
  quarantineOf(descriptor: ModelDescriptor): { quarantined: boolean; lastReasons: string[] } {
    const able = this.backends.filter((b) => b.canServe(descriptor));
    const states = able.map((b) => this.options.registry.quarantine(this.keyFor(descriptor, b)));
    return { quarantined: states.length > 0 && states.every((q) => q.quarantined), lastReasons: states.flatMap((q) => q.lastReasons).slice(0, 5) };
  }

  /**
   * Tries every candidate backend in an isolated runner (not the one that serves requests), records each
   * attempt, and stops it again: which backends can serve this model here, and how fast.
   */
  async probe(descriptor: ModelDescriptor, options: { timeoutMs: number; allowUnsupported: boolean }): Promise<ProbeResult[]> {
    const results: ProbeResult[] = [];
    const registry = this.options.registry;
    for (const backend of this.candidates(descriptor, options.allowUnsupported)) {
      const key = this.keyFor(descriptor, backend);
      const quarantine = registry.quarantine(key);
      if (quarantine.quarantined && !options.allowUnsupported) {
        registry.record(key, "refused", { reason: "model_quarantined" });
        results.push({ backend: backend.name, backendVersion: backend.version, outcome: "skipped", reason: "model_quarantined", message: quarantine.lastReasons.join(", "), loadMs: null, canaryTokensPerSec: null });
        continue;
      }
      const fileProblem = unservableReason(descriptor);
      if (fileProblem) {
        registry.record(key, "failure", { reason: fileProblem.code, message: fileProblem.message, durationMs: 0 });
        results.push({ backend: backend.name, backendVersion: backend.version, outcome: "failure", reason: fileProblem.code, message: fileProblem.message, loadMs: null, canaryTokensPerSec: null });
        continue;
      }
      const probeId = `probe:${descriptor.id}:${backend.name}`;
      const started = Date.now();
      try {
        const runner = await backend.start(
          { ...descriptor, id: descriptor.id },
          {
            ...this.options.start,
            loaderTimeoutMs: options.timeoutMs,
            log: this.options.log,
            admit: (estimate) => this.admitProbe(probeId, estimate),
          },
        );
        const loadMs = Date.now() - started;
        registry.record(key, "success", { durationMs: loadMs, metadata: { probe: true, timeoutMs: options.timeoutMs, canary: runner.info.canary, memory: runner.info.memory } });
        results.push({ backend: backend.name, backendVersion: backend.version, outcome: "success", reason: null, message: null, loadMs, canaryTokensPerSec: runner.info.canary.tokensPerSec });
        await runner.stop(0);
      } catch (error) {
        const lmx = error instanceof LmxError ? error : new LmxError("model_probe_failed", String((error as Error)?.message ?? error));
        const outcome = NOT_THE_BACKENDS_FAULT.has(lmx.code) ? "refused" : "failure";
        registry.record(key, outcome, { reason: lmx.code, message: lmx.message, durationMs: Date.now() - started, metadata: { probe: true, timeoutMs: options.timeoutMs } });
        results.push({ backend: backend.name, backendVersion: backend.version, outcome: outcome === "refused" ? "skipped" : "failure", reason: lmx.code, message: lmx.message, loadMs: null, canaryTokensPerSec: null });
      } finally {
        this.options.memory.release(probeId);
      }
    }
    return results;
  }

  private admitProbe(probeId: string, estimate: MemoryEstimate): Promise<void> {
    return this.admissionLock.run(async () => {
      const need = estimate.ram + this.options.memory.runnerOverheadBytes;
      if (!this.options.memory.fits(need)) {
        throw new LmxError("insufficient_memory", `a probe needs an estimated ${Math.ceil(need / 1048576)} MiB and the memory budget has less free; probes never evict loaded models`);
      }
      this.options.memory.reserve(probeId, need, "estimate");
    });
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
      if (state.servedBy) {
        this.options.registry.record(state.servedBy.key, "failure", {
          reason: exit.reason.code,
          message: exit.reason.message,
          metadata: { signal: exit.signal, exitCode: exit.code, stderrTail: exit.stderrTail.slice(-10), uptimeMs: Date.now() - runner.startedAt },
        });
      }
      this.emit("unload", { model: state.descriptor.id, reason: exit.reason.code } satisfies ModelUnloadEvent);
    }
  }
}
