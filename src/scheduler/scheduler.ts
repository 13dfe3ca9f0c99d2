/**
 * Hands requests a model: `acquire` answers with a lease — the ready runner plus `release()` — once the model
 * is loaded (just in time, if allowed) and its runner has a free sequence. Capacity is always the serving
 * runner's; keep-alive, last use and served counts follow from acquire/release (Ollama's runnerRef).
 *
 * Loads, unloads and reloads of one model run one at a time in arrival order, so every answer describes the
 * runner that really serves and the last command wins. Memory is placed before any process starts, and at most
 * `maxConcurrentLoads` runners are starting at once.
 */
import { EventEmitter } from "node:events";
import type { Backend, RunnerExit, RunnerHandle, StartOptions } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ResolvedRunnerSettings } from "../runner/protocol.js";
import type { CompatibilityKey, CompatibilityRegistry } from "../state/compatibility-registry.js";
import { fileProblem } from "../inventory/inventory.js";
import { AdmissionQueue, type AdmissionSnapshot } from "./admission.js";
import { attemptOutcome, compatibilityKey, fallsThrough, orderCandidates } from "./backend-policy.js";
import { ModelLifecycle, type ModelPhase, type ModelTransition } from "./lifecycle.js";
import { type MemoryBudget, Mutex } from "./memory-budget.js";
import { spreadOverGpus } from "./gpu-devices.js";
import { decidePlacement, type PlacementDecision, type Resident } from "./placement.js";
import { probeBackends, type ProbeResult } from "./probe.js";
import type { Priority } from "./priority.js";
import type { SettingsSources } from "../tuning/precedence.js";

export { runtimeSignature } from "./backend-policy.js";
export type { ProbeResult } from "./probe.js";

const KEEP_ALIVE_SWEEP_MS = 250;
/** Recent demand halves every 5 minutes: yesterday's traffic does not protect a model today. */
const DEMAND_HALF_LIFE_MS = 5 * 60_000;
const DRAIN_POLL_MS = 20;
/** How often a request whose runner died between its grant and its start tries again. */
const ACQUIRE_ATTEMPTS = 3;

export type ModelStatus = "loaded" | "loading" | "available";

/** What a load needs: RAM, and each budgeted GPU's memory (in MemoryBudget.gpus order; [] without GPU budget). */
interface Need {
  ram: number;
  vram: number[];
}

export interface ModelLease {
  readonly runner: RunnerHandle;
  /** Idempotent. Frees the sequence, marks the model used now and counts the request as served. */
  release(): void;
}

export interface SchedulerOptions {
  jitLoad: boolean;
  start: Omit<StartOptions, "log" | "admit">;
  log: StartOptions["log"];
  memory: MemoryBudget;
  eviction: boolean;
  maxLoadedModels: number | null;
  /** Runner processes starting at once, across models. */
  maxConcurrentLoads: number;
  /** Grace period for in-flight requests when a model is unloaded. */
  unloadGraceMs: number;
  registry: CompatibilityRegistry;
  quarantineAfter: number;
  /** Backend names in preference order. */
  backendOrder: string[];
  allowUnsupportedRuntime: boolean;
  queue: { maxConcurrent: number; queueSize: number; queueTimeoutMs: number; agingMs?: number; classQueueSize?: Partial<Record<Priority, number>> };
  /**
   * Sequences added to every runner that only interactive requests may use: a person is never queued behind a
   * full runner of batch work (costs one more sequence's KV cache per slot).
   */
  interactiveSlots?: number;
  /**
   * When a load does not fit because other models are busy (not because it never can): wait for them instead of
   * answering 507, ask them to finish what runs and take nothing new (their waiters queue for their next turn),
   * and swap once they are done. Off: 507 at once, as before 0.2.
   */
  affinity?: { maxWaitMs: number; minResidentMs: number } | null;
  /** Whether a backend here can offload layers to a GPU (then weights need not be in RAM). */
  gpuPresent: boolean;
}

interface ModelSlot {
  descriptor: ModelDescriptor;
  /** The runner that serves (phase ready) or drains (phase draining). */
  runner: RunnerHandle | null;
  /** The memory token of that runner. */
  token: string | null;
  /** Load, unload and reload commands of this model, one at a time. */
  ops: Mutex;
  opsPending: number;
  /** The JIT load queued or running, so a burst of requests asks for one load. */
  pendingLoad: Promise<RunnerHandle> | null;
  lastUsed: number;
  requestsServed: number;
  loads: number;
  lastError: { code: string; message: string; at: string } | null;
  /** Someone asked for this model to be loaded (auto_load, admin load, or a JIT load). */
  wanted: boolean;
  /** Settings an operator chose with an explicit load; kept across crash reloads. */
  overrides: Partial<ResolvedRunnerSettings>;
  /** Where those came from (src/tuning/precedence.ts), over the descriptor's own sources. */
  overrideSources: Partial<SettingsSources>;
  /** The backend and compatibility key of the current runner, so its death is recorded against the right key. */
  servedBy: { backend: Backend; key: CompatibilityKey } | null;
  /** Why the runner is draining, for the move to unloaded once it is gone. */
  drainReason: string | null;
  /** Of the serving runner's sequences, those held for interactive requests. */
  interactiveSlots: number;
  /** Loads waiting for room asked this model to take no new requests (see SchedulerOptions.affinity). */
  yieldingFor: Set<string>;
  /** When its runner became ready: a model is asked to yield only after affinity.minResidentMs. */
  readyAt: number;
  /** Leases granted since its runner became ready, and the group that waited for it then: a model yields its
   * turn only after that whole group got in (A A A B B, not A B A B). */
  grantedSinceReady: number;
  groupAtReady: number;
  /** Requests lately, decaying with DEMAND_HALF_LIFE_MS: with the load time, what evicting this model costs. */
  demand: { value: number; at: number };
  lastLoadMs: number;
}

export interface LoadedModelView {
  id: string;
  pid: number | null;
  backend: string;
  backendVersion: string;
  path: string;
  type: string;
  contextSize: number;
  parallel: number;
  /** Of `parallel`, the sequences only interactive requests may use. */
  interactiveSlots: number;
  threads: number;
  gpu: string | false;
  loadMs: number;
  uptimeSec: number;
  idleSec: number;
  requestsServed: number;
  running: number;
  waiting: number;
  loads: number;
  memory: RunnerHandle["info"]["memory"];
  estimate: RunnerHandle["info"]["estimate"];
  reservedBytes: number;
  /** What the runner holds of each GPU's budget (memory.gpus order): its weights, KV cache and CUDA context. */
  reservedVramBytes: number[];
  pinned: boolean;
  keepAliveSec: number | null;
  /** The settings the runner was started with, and which layer each came from (docs/autotune.md). */
  settings: ResolvedRunnerSettings;
  settingsSource: Partial<SettingsSources>;
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

/**
 * Emits "load" (ModelLoadEvent) after every load attempt, "unload" (ModelUnloadEvent) after every unload or
 * runner death, and "transition" (ModelTransition) for every lifecycle move.
 */
export class Scheduler extends EventEmitter {
  readonly lifecycle = new ModelLifecycle();
  readonly admission: AdmissionQueue;
  private readonly slots = new Map<string, ModelSlot>();
  private readonly placementLock = new Mutex();
  /** Loads waiting for room (affinity), woken by releases, unloads and exits. */
  private readonly roomWaiters = new Set<() => void>();
  private readonly loadGate: Semaphore;
  private closed = false;
  private tokens = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly backends: readonly Backend[],
    private readonly options: SchedulerOptions,
  ) {
    super();
    this.admission = new AdmissionQueue({ ...options.queue, capacityOf: (id, priority) => this.capacityOf(id, priority) });
    this.loadGate = new Semaphore(options.maxConcurrentLoads);
    this.lifecycle.on("transition", (t: ModelTransition) => this.emit("transition", t));
    this.sweeper = setInterval(() => this.unloadIdle(), KEEP_ALIVE_SWEEP_MS);
    this.sweeper.unref();
  }

  // ---- requests ------------------------------------------------------------------------------------------

  /**
   * Waits for the model to be ready with a free sequence (starting a load if allowed) and returns the lease.
   * Fails with the load's error if the load fails, or with the queue's (full, timeout, cancelled).
   */
  async acquire(descriptor: ModelDescriptor, signal?: AbortSignal, priority: Priority = "normal"): Promise<ModelLease> {
    for (let attempt = 1; ; attempt++) {
      this.refuseIfClosed();
      const slot = this.slotFor(descriptor);
      if (!this.isReady(slot)) this.requestLoad(slot, false);
      const granted = await this.admission.acquire(descriptor.id, signal, priority);
      const runner = slot.runner;
      // the runner may have died between the grant and now: the next round reloads it
      if (!runner || !this.isReady(slot)) {
        granted.release();
        if (attempt >= ACQUIRE_ATTEMPTS)
          throw new LmxError("model_crashed", `the runner for '${descriptor.id}' kept exiting before the request could start`, { retryAfterSec: 1 });
        continue;
      }
      slot.grantedSinceReady++;
      slot.demand = { value: decayedDemand(slot, Date.now()) + 1, at: Date.now() };
      let released = false;
      return {
        runner,
        release: () => {
          if (released) return;
          released = true;
          slot.lastUsed = Date.now();
          slot.requestsServed++;
          granted.release();
          this.roomMayHaveChanged();
        },
      };
    }
  }

  queueSnapshot(): AdmissionSnapshot {
    return this.admission.snapshot();
  }

  // ---- operator commands ---------------------------------------------------------------------------------

  /** Loads the model (auto_load, admin) and waits until it is ready. */
  async ensureLoaded(descriptor: ModelDescriptor): Promise<RunnerHandle> {
    this.refuseIfClosed();
    const slot = this.slotFor(descriptor);
    slot.wanted = true;
    return this.serialized(slot, () => this.loadNow(slot, "requested"));
  }

  /**
   * An operator's load, optionally with other runner settings. Requests never change a runner's settings; only
   * this does, and a loaded runner with other settings is drained and replaced. The answer is the runner that
   * serves once this command ran, in the order commands arrived.
   */
  async load(
    descriptor: ModelDescriptor,
    overrides: Partial<ResolvedRunnerSettings>,
    sources?: Partial<SettingsSources>,
  ): Promise<{ runner: RunnerHandle; reloaded: boolean }> {
    this.refuseIfClosed();
    const slot = this.slotFor(descriptor);
    return this.serialized(slot, async () => {
      slot.wanted = true;
      const wanted = { ...slot.overrides, ...overrides };
      const current = this.isReady(slot) ? slot.runner : null;
      // the model's own settings may have changed too since it loaded (a tuned profile applied or rolled back)
      const next: ResolvedRunnerSettings = { ...descriptor.settings, ...wanted };
      const running = this.effectiveSettings(slot);
      const differs = (Object.keys(next) as Array<keyof ResolvedRunnerSettings>).some(
        (key) => JSON.stringify(running[key]) !== JSON.stringify(next[key]),
      );
      if (current && !differs) {
        // the same settings, perhaps chosen by another layer now (a profile that picked what the preset had)
        slot.descriptor = descriptor;
        if (sources) slot.overrideSources = { ...slot.overrideSources, ...sources };
        return { runner: current, reloaded: false };
      }
      if (current) await this.unloadNow(slot, this.options.unloadGraceMs, "reloaded with new settings");
      slot.descriptor = descriptor;
      slot.overrides = wanted;
      if (sources) slot.overrideSources = { ...slot.overrideSources, ...sources };
      return { runner: await this.loadNow(slot, current ? "reloaded with new settings" : "requested"), reloaded: current !== null };
    });
  }

  async unload(id: string, graceMs: number, reason = "requested"): Promise<boolean> {
    const slot = this.slots.get(id);
    if (!slot) return false;
    slot.wanted = false;
    return this.serialized(slot, () => this.unloadNow(slot, graceMs, reason));
  }

  /** After an operator lifted a quarantine: the model may be loaded again. */
  unquarantined(id: string): void {
    if (this.lifecycle.phase(id) === "quarantined") this.lifecycle.move(id, "unloaded", "quarantine lifted");
  }

  async stopAll(graceMs: number): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.admission.rejectAll(shuttingDown());
    await Promise.all(
      [...this.slots.values()].map((slot) => this.serialized(slot, () => this.unloadNow(slot, graceMs, "server shutting down")).catch(() => false)),
    );
  }

  // ---- views ---------------------------------------------------------------------------------------------

  phase(id: string): ModelPhase {
    return this.lifecycle.phase(id);
  }

  status(id: string): ModelStatus {
    const phase = this.lifecycle.phase(id);
    return phase === "ready" ? "loaded" : phase === "loading" ? "loading" : "available";
  }

  lastError(id: string): ModelSlot["lastError"] {
    return this.slots.get(id)?.lastError ?? null;
  }

  runnerFor(id: string): RunnerHandle | null {
    const slot = this.slots.get(id);
    return slot && this.isReady(slot) ? slot.runner : null;
  }

  get loadingCount(): number {
    let n = 0;
    for (const id of this.slots.keys()) if (this.lifecycle.phase(id) === "loading") n++;
    return n;
  }

  loaded(): LoadedModelView[] {
    const now = Date.now();
    const views: LoadedModelView[] = [];
    for (const [id, slot] of this.slots) {
      const runner = slot.runner;
      if (!runner || !this.isReady(slot)) continue;
      const info = runner.info;
      views.push({
        id,
        pid: runner.pid,
        backend: info.backend,
        backendVersion: info.backendVersion,
        path: slot.descriptor.path,
        type: slot.descriptor.type,
        contextSize: info.contextSize,
        parallel: info.parallel,
        interactiveSlots: slot.interactiveSlots,
        threads: info.threads,
        gpu: info.gpu,
        loadMs: info.loadMs,
        uptimeSec: Math.round((now - runner.startedAt) / 1000),
        idleSec: Math.round((now - (slot.lastUsed || runner.startedAt)) / 1000),
        requestsServed: slot.requestsServed,
        running: this.admission.runningFor(id),
        waiting: this.admission.waitingFor(id),
        loads: slot.loads,
        memory: info.memory,
        estimate: info.estimate,
        reservedBytes: slot.token ? this.options.memory.held(slot.token) : 0,
        reservedVramBytes: slot.token ? this.options.memory.heldVram(slot.token) : this.options.memory.gpus.map(() => 0),
        pinned: slot.descriptor.pinned,
        keepAliveSec: slot.descriptor.keepAliveMs === null ? null : slot.descriptor.keepAliveMs / 1000,
        settings: this.effectiveSettings(slot),
        settingsSource: { ...slot.descriptor.settingsSource, ...slot.overrideSources },
      });
    }
    return views;
  }

  /** Whether a backend here can offload layers to a GPU (autotune searches GPU layers only then). */
  get gpuPresent(): boolean {
    return this.options.gpuPresent;
  }

  /** Whether some backend here opens this model's format and type. */
  opens(descriptor: ModelDescriptor): boolean {
    return this.backends.some((b) => b.canServe(descriptor));
  }

  /**
   * Why a model cannot be served as it is: its files (incomplete, invalid) or no backend here opening it.
   * Null when it can be tried.
   */
  unservableReason(descriptor: ModelDescriptor): LmxError | null {
    const problem = fileProblem(descriptor);
    if (problem) return problem;
    return this.opens(descriptor) ? null : noBackendFor(descriptor);
  }

  /** Backends that can open the model, in policy order. */
  candidates(descriptor: ModelDescriptor, allowUnsupported = this.options.allowUnsupportedRuntime): Backend[] {
    return orderCandidates(this.backends, descriptor, this.options.backendOrder, this.options.registry.latest(descriptor.id), allowUnsupported);
  }

  keyFor(descriptor: ModelDescriptor, backend: Backend): CompatibilityKey {
    return compatibilityKey(descriptor, backend);
  }

  /** Whether every candidate of this model is quarantined (for listings). */
  quarantineOf(descriptor: ModelDescriptor): { quarantined: boolean; lastReasons: string[] } {
    const able = this.backends.filter((b) => b.canServe(descriptor));
    const states = able.map((b) => this.options.registry.quarantine(this.keyFor(descriptor, b)));
    return { quarantined: states.length > 0 && states.every((q) => q.quarantined), lastReasons: states.flatMap((q) => q.lastReasons).slice(0, 5) };
  }

  /** Tries every candidate backend in an isolated runner, under the same memory budget, never evicting. */
  probe(descriptor: ModelDescriptor, options: { timeoutMs: number; allowUnsupported: boolean }): Promise<ProbeResult[]> {
    return probeBackends(
      {
        candidates: this.candidates(descriptor, options.allowUnsupported),
        registry: this.options.registry,
        start: { ...this.options.start, log: this.options.log },
        admit: (token, model, estimate) =>
          this.placementLock.run(async () => {
            const need = this.needOf(estimate);
            if (!this.options.memory.fits(need.ram, need.vram)) {
              throw new LmxError(
                "insufficient_memory",
                `a probe needs an estimated ${Math.ceil(need.ram / 1048576)} MiB (${need.vram.map((v) => Math.ceil(v / 1048576)).join("/") || 0} MiB on the GPUs) and the memory budget has less free; probes never evict loaded models`,
              );
            }
            this.options.memory.reserve(token, model, need.ram, "estimate", need.vram);
          }),
        release: (token) => this.options.memory.release(token),
      },
      descriptor,
      options,
    );
  }

  /**
   * Runs `use` against an isolated runner of this model on this backend with the descriptor's settings
   * (autotune's candidates): never the runner that serves, placed in the same memory budget and never evicting
   * (a candidate that does not fit is refused with insufficient_memory), stopped again afterwards, whatever
   * `use` did. A load failure is thrown as the engine's LmxError; what is recorded where is the caller's call.
   */
  async trial<T>(
    descriptor: ModelDescriptor,
    backend: Backend,
    options: { token: string; loaderTimeoutMs: number },
    use: (runner: RunnerHandle) => Promise<T>,
  ): Promise<T> {
    this.refuseIfClosed();
    const memory = this.options.memory;
    try {
      const runner = await backend.start(descriptor, {
        ...this.options.start,
        log: this.options.log,
        loaderTimeoutMs: options.loaderTimeoutMs,
        admit: (estimate) =>
          this.placementLock.run(async () => {
            const need = estimate.ram + memory.runnerOverheadBytes;
            if (!memory.fits(need)) {
              throw new LmxError(
                "insufficient_memory",
                `this candidate needs an estimated ${Math.ceil(need / 1048576)} MiB and the memory budget has ${Math.max(0, Math.floor((memory.budgetBytes - memory.usedBytes) / 1048576))} MiB free; autotune never evicts loaded models`,
              );
            }
            memory.reserve(options.token, `trial:${descriptor.id}`, need, "estimate");
          }),
      });
      try {
        return await use(runner);
      } finally {
        await runner.stop(0);
      }
    } finally {
      memory.release(options.token);
      this.roomMayHaveChanged();
    }
  }

  // ---- loading -------------------------------------------------------------------------------------------

  private capacityOf(id: string, priority: Priority): number {
    const slot = this.slots.get(id);
    if (!slot?.runner || !this.isReady(slot)) return 0;
    // making room for a waiting model: what runs finishes, nothing new starts (it waits for this model's next turn)
    if (slot.yieldingFor.size > 0) return 0;
    const total = slot.runner.info.parallel;
    return priority === "interactive" ? total : Math.max(1, total - slot.interactiveSlots);
  }

  private isReady(slot: ModelSlot): boolean {
    return this.lifecycle.phase(slot.descriptor.id) === "ready" && slot.runner !== null && slot.runner.exit === null;
  }

  /** Starts a JIT load unless one is queued or running; its outcome reaches waiters through the queue. */
  private requestLoad(slot: ModelSlot, explicit: boolean): void {
    if (slot.pendingLoad || this.lifecycle.phase(slot.descriptor.id) === "loading") return;
    if (!explicit && !slot.wanted && !this.options.jitLoad) {
      throw new LmxError(
        "model_not_loaded",
        `model '${slot.descriptor.id}' is not loaded and jit_load is off; load it with POST /admin/models/load`,
        {
          param: "model",
        },
      );
    }
    slot.wanted = true;
    const load = this.serialized(slot, () => this.loadNow(slot, "requested by a request"));
    slot.pendingLoad = load;
    // the outcome reaches waiters through the queue; a load nobody awaits must not be an unhandled rejection
    load.catch(() => {});
  }

  /** Runs inside the model's command queue: loads unless a runner already serves, and tells waiters. */
  private async loadNow(slot: ModelSlot, reason: string): Promise<RunnerHandle> {
    const id = slot.descriptor.id;
    if (this.isReady(slot) && slot.runner) {
      slot.pendingLoad = null;
      return slot.runner;
    }
    if (this.closed) {
      slot.pendingLoad = null;
      throw shuttingDown();
    }
    this.lifecycle.move(id, "loading", reason);
    try {
      const { runner, backend, key, token } = await this.startRunner(slot);
      slot.interactiveSlots = Math.min(this.options.interactiveSlots ?? 0, Math.max(0, runner.info.parallel - 1));
      slot.runner = runner;
      slot.lastLoadMs = runner.info.loadMs;
      slot.readyAt = Date.now();
      slot.grantedSinceReady = 0;
      slot.groupAtReady = this.admission.waitingFor(id);
      slot.token = token;
      slot.servedBy = { backend, key };
      slot.loads++;
      slot.lastUsed = Date.now();
      slot.lastError = null;
      void runner.exited.then((exit) => this.onRunnerExit(slot, runner, token, exit));
      // cleared before waiters hear of the outcome, so a request that follows at once starts its own load
      slot.pendingLoad = null;
      this.lifecycle.move(id, "ready", reason, { backend: backend.name });
      this.admission.dispatch();
      return runner;
    } catch (error) {
      const lmx = asLmx(error);
      const to: ModelPhase = lmx.code === "model_quarantined" ? "quarantined" : attemptOutcome(lmx) === "refused" ? "unloaded" : "failed";
      slot.pendingLoad = null;
      this.lifecycle.move(id, to, lmx.message, { code: lmx.code });
      this.admission.rejectModel(id, lmx);
      throw lmx;
    }
  }

  /**
   * Tries the candidate backends in policy order: a quarantined combination is refused fast (unless
   * allow_unsupported_runtime), a failure that is the backend's fault falls through to the next candidate, and
   * every attempt is recorded.
   */
  private async startRunner(slot: ModelSlot): Promise<{ runner: RunnerHandle; backend: Backend; key: CompatibilityKey; token: string }> {
    const allowUnsupported = this.options.allowUnsupportedRuntime;
    const settings = this.effectiveSettings(slot);
    const reserve = this.options.interactiveSlots ?? 0;
    // held-back sequences for interactive requests come on top of the model's own
    const descriptor = { ...slot.descriptor, settings: { ...settings, parallel: settings.parallel + reserve } };
    const candidates = this.candidates(descriptor, allowUnsupported);
    if (candidates.length === 0) throw noBackendFor(descriptor);
    const registry = this.options.registry;
    const problem = fileProblem(descriptor);
    if (problem?.code === "model_file_invalid") {
      // the file itself is bad: no backend will do better, but the attempt is remembered and counts toward quarantine
      const key = this.keyFor(descriptor, candidates[0]!);
      const quarantine = registry.quarantine(key);
      if (quarantine.quarantined && !allowUnsupported) throw this.refuseQuarantined(descriptor, key, quarantine.lastReasons);
      registry.record(key, "failure", { reason: problem.code, message: problem.message, durationMs: 0 });
      this.noteFailure(slot, candidates[0]!.name, problem, 0);
      throw problem;
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
      const token = `${descriptor.id}#${++this.tokens}`;
      const loaderTimeoutMs = descriptor.loaderTimeoutMs ?? this.options.start.loaderTimeoutMs;
      const started = Date.now();
      let runner: RunnerHandle;
      try {
        // memory is placed before a process exists: what the file alone proves it needs, then the exact estimate
        await this.placeWaiting(slot, token, this.preEstimate(descriptor));
        runner = await this.loadGate.run(() => {
          this.options.log("info", "loading model", {
            model: descriptor.id,
            path: descriptor.path,
            backend: backend.name,
            settings: descriptor.settings,
          });
          return backend.start(descriptor, {
            ...this.options.start,
            loaderTimeoutMs,
            log: this.options.log,
            admit: (estimate) => this.placeWaiting(slot, token, this.needOf(estimate)),
          });
        });
      } catch (error) {
        this.options.memory.release(token);
        const lmx = asLmx(error);
        const durationMs = Date.now() - started;
        const outcome = attemptOutcome(lmx);
        registry.record(key, outcome, {
          reason: lmx.code,
          message: lmx.message,
          durationMs,
          ...(outcome === "failure" ? { metadata: { timeoutMs: loaderTimeoutMs, ...(lmx.details ?? {}) } } : {}),
        });
        if (outcome === "refused") throw lmx;
        this.noteFailure(slot, backend.name, lmx, durationMs);
        lastError = lmx;
        if (!fallsThrough(lmx)) throw lmx;
        continue;
      }
      const durationMs = Date.now() - started;
      registry.record(key, "success", {
        durationMs,
        metadata: {
          timeoutMs: loaderTimeoutMs,
          canary: runner.info.canary,
          estimate: runner.info.estimate,
          memory: runner.info.memory,
          pid: runner.pid,
        },
      });
      const { memory } = runner.info;
      const measured = this.needOf({ ram: memory.modelRam + memory.contextRam, vram: memory.modelVram + memory.contextVram });
      this.options.memory.reserve(token, descriptor.id, measured.ram, "actual", measured.vram);
      this.options.log("info", "model loaded", { model: descriptor.id, backend: backend.name, ms: durationMs, pid: runner.pid });
      this.emit("load", { model: descriptor.id, backend: backend.name, outcome: "success", code: null, durationMs } satisfies ModelLoadEvent);
      if (this.closed) {
        await runner.stop(0);
        this.options.memory.release(token);
        throw shuttingDown();
      }
      return { runner, backend, key, token };
    }
    if (lastError) throw lastError;
    throw this.refuseQuarantined(descriptor, null, quarantinedReasons ?? []);
  }

  /**
   * What a load holds before its runner estimates: the weights (read into RAM unless layers go to a GPU) plus
   * a runner's own overhead. Enough that a burst of loads cannot start more processes than the budget holds.
   */
  private preEstimate(descriptor: ModelDescriptor): Need {
    const onGpu = this.options.gpuPresent && descriptor.settings.gpuLayers !== 0 && descriptor.settings.gpu !== "cpu";
    // GPU memory is placed only with the exact estimate: a guess from the file could evict a GPU model for a load
    // that the estimate then refuses anyway
    return this.needOf({ ram: onGpu ? 0 : descriptor.sizeBytes, vram: 0 });
  }

  /**
   * What a load needs of RAM and of each GPU, overheads included. Without a GPU budget (no nvidia-smi: a CPU
   * machine, or Apple Silicon, whose GPU memory is the RAM) whatever llama.cpp puts on "the GPU" counts as RAM.
   */
  private needOf(estimate: { ram: number; vram: number }): Need {
    const memory = this.options.memory;
    if (memory.gpus.length === 0) return { ram: estimate.ram + estimate.vram + memory.runnerOverheadBytes, vram: [] };
    const onGpu = estimate.vram > 0 ? estimate.vram + memory.gpuRunnerOverheadBytes : 0;
    return { ram: estimate.ram + memory.runnerOverheadBytes, vram: spreadOverGpus(onGpu, memory.gpus) };
  }

  /**
   * Places `need` for this load's token; when it does not fit only because other models are busy, waits for
   * them (affinity): they finish what runs and take nothing new, then the swap happens. Bounded by maxWaitMs.
   */
  private async placeWaiting(slot: ModelSlot, token: string, need: Need): Promise<void> {
    const id = slot.descriptor.id;
    const affinity = this.options.affinity ?? null;
    const waitStarted = Date.now();
    const deadline = waitStarted + (affinity?.maxWaitMs ?? 0);
    const askedToYield = new Set<ModelSlot>();
    try {
      for (;;) {
        const refusal = await this.placementLock.run(() => this.place(slot, token, need));
        if (!refusal) return;
        if (refusal.never || !affinity || this.closed || Date.now() >= deadline) {
          const waited = affinity && !refusal.never && Date.now() >= deadline ? ` (waited affinity.max_wait_sec for busy models)` : "";
          throw new LmxError("insufficient_memory", `cannot load '${id}': ${refusal.reason}${waited}`, {
            details: {
              estimate_bytes: need.ram,
              budget_bytes: this.options.memory.budgetBytes,
              used_bytes: this.options.memory.usedBytes,
              ...(need.vram.length > 0
                ? { estimate_vram_bytes: need.vram, gpu_budget_bytes: this.options.memory.gpuBudgets, gpu_used_bytes: this.options.memory.gpuUsed }
                : {}),
            },
            retryAfterSec: refusal.never ? undefined : 5,
          });
        }
        // a model that just arrived serves a while first (min resident time), then yields its turn
        let nextLook = deadline;
        let askedNow = false;
        for (const blocker of refusal.blockers) {
          const other = this.slots.get(blocker);
          // a model still loading first serves the requests it was loaded for
          if (!other || !this.isReady(other)) continue;
          // resident at least min_resident_sec, or 3× its load time if longer: a swap costs a third of the time or less
          const yieldAt = other.readyAt + Math.max(affinity.minResidentMs, 3 * other.lastLoadMs);
          // its waiting group got in, or nobody waits for it, or this load has waited half its bound (no starving)
          const servedItsGroup =
            other.grantedSinceReady >= Math.max(1, other.groupAtReady) ||
            this.admission.waitingFor(blocker) === 0 ||
            Date.now() - waitStarted >= affinity.maxWaitMs / 2;
          if (Date.now() >= yieldAt && servedItsGroup) {
            if (!other.yieldingFor.has(id)) {
              this.options.log("info", "asking a busy model to make room", { model: blocker, for: id });
              askedNow = true;
            }
            other.yieldingFor.add(id);
            askedToYield.add(other);
          } else {
            nextLook = Math.min(nextLook, yieldAt);
          }
        }
        // a model asked just now may already have nothing running: look again at once rather than wait for an event
        if (!askedNow) await this.roomChange(nextLook);
      }
    } finally {
      for (const other of askedToYield) other.yieldingFor.delete(id);
      if (askedToYield.size > 0) this.admission.dispatch();
    }
  }

  /** Resolves on the next release, unload or runner exit (something may have made room), or at `until`. */
  private roomChange(until: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.roomWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - Date.now()));
      this.roomWaiters.add(done);
    });
  }

  private roomMayHaveChanged(): void {
    if (this.roomWaiters.size === 0) return;
    const waiters = [...this.roomWaiters];
    this.roomWaiters.clear();
    for (const waiter of waiters) waiter();
  }

  /**
   * Runs under the placement lock: fits `need` for this load's token, evicting idle models if it must; the
   * refusal when it cannot (yet).
   */
  private async place(slot: ModelSlot, token: string, need: Need): Promise<Extract<PlacementDecision, { kind: "refused" }> | null> {
    const id = slot.descriptor.id;
    const memory = this.options.memory;
    const residents: Resident[] = [];
    const minResidentMs = this.options.affinity?.minResidentMs ?? 0;
    const now = Date.now();
    const inUseLately = (s: ModelSlot) => minResidentMs > 0 && now - Math.max(s.lastUsed, s.readyAt) < minResidentMs;
    for (const [other, s] of this.slots) {
      const phase = this.lifecycle.phase(other);
      // a draining runner still holds its memory (counted in usedBytes) but is on its way out
      if (other === id || (phase !== "ready" && phase !== "loading")) continue;
      residents.push({
        model: other,
        bytes: memory.reservation(other)?.bytes ?? 0,
        vramBytes: memory.reservation(other)?.vram ?? [],
        pinned: s.descriptor.pinned,
        // a model yielding its turn is done once nothing runs on it: its waiters queue for its next turn. With
        // affinity, a model used within min_resident_sec is in use (its clients are between two requests), not
        // idle: it is asked to yield instead of being evicted under them
        busy:
          phase !== "ready" ||
          s.opsPending > 0 ||
          this.admission.runningFor(other) > 0 ||
          (s.yieldingFor.size === 0 && (this.admission.waitingFor(other) > 0 || inUseLately(s))),
        lastUsed: s.lastUsed,
        cost: s.lastLoadMs * decayedDemand(s, Date.now()),
      });
    }
    const decision = decidePlacement(
      {
        budgetBytes: memory.budgetBytes,
        usedBytes: memory.usedBytes - memory.held(token),
        gpus: memory.gpus.map((g, i) => ({
          index: g.index,
          budgetBytes: memory.gpuBudgets[i] ?? 0,
          usedBytes: (memory.gpuUsed[i] ?? 0) - (memory.heldVram(token)[i] ?? 0),
        })),
        maxLoadedModels: this.options.maxLoadedModels,
        eviction: this.options.eviction,
        residents,
      },
      { model: id, needBytes: need.ram, needVram: need.vram },
    );
    if (decision.kind === "refused") return decision;
    // every victim's unload is queued before any is awaited, so no later command of theirs can slip in between
    await Promise.all(
      decision.evict.map((victim) => {
        const victimSlot = this.slots.get(victim)!;
        return this.serialized(victimSlot, () => this.unloadNow(victimSlot, this.options.unloadGraceMs, `evicted to make room for '${id}'`));
      }),
    );
    memory.reserve(token, id, need.ram, "estimate", need.vram);
    this.options.log("info", "load admitted", {
      model: id,
      estimate_bytes: need.ram,
      used_bytes: memory.usedBytes,
      budget_bytes: memory.budgetBytes,
      ...(need.vram.length > 0 ? { estimate_vram_bytes: need.vram, gpu_used_bytes: memory.gpuUsed } : {}),
    });
    return null;
  }

  // ---- unloading -----------------------------------------------------------------------------------------

  /** Runs inside the model's command queue: drains and stops the serving runner, if there is one. */
  private async unloadNow(slot: ModelSlot, graceMs: number, reason: string): Promise<boolean> {
    const runner = slot.runner;
    if (!runner || !this.isReady(slot)) return false;
    const id = slot.descriptor.id;
    this.lifecycle.move(id, "draining", reason);
    slot.drainReason = reason;
    // requests in flight finish first (no new one is granted while draining): the gateway may be talking to a
    // child server directly, where the runner's own drain cannot see them
    const deadline = Date.now() + graceMs;
    while (this.admission.runningFor(id) > 0 && Date.now() < deadline && runner.exit === null) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    await runner.stop(Math.max(0, deadline - Date.now()));
    this.options.log("info", "model unloaded", { model: slot.descriptor.id, reason });
    return true;
  }

  private onRunnerExit(slot: ModelSlot, runner: RunnerHandle, token: string, exit: RunnerExit): void {
    const id = slot.descriptor.id;
    this.options.memory.release(token);
    this.roomMayHaveChanged();
    if (slot.runner !== runner) return;
    slot.runner = null;
    slot.token = null;
    const phase = this.lifecycle.phase(id);
    if (phase === "draining") {
      this.lifecycle.move(id, "unloaded", slot.drainReason ?? "stopped");
      this.emit("unload", { model: id, reason: slot.drainReason ?? "stopped" } satisfies ModelUnloadEvent);
    } else if (exit.reason !== "stopped") {
      slot.lastError = { code: exit.reason.code, message: exit.reason.message, at: new Date().toISOString() };
      if (slot.servedBy) {
        // a lost RPC worker is the network's fault, not the backend's: it neither demotes nor quarantines
        this.options.registry.record(slot.servedBy.key, attemptOutcome(exit.reason), {
          reason: exit.reason.code,
          message: exit.reason.message,
          metadata: { signal: exit.signal, exitCode: exit.code, stderrTail: exit.stderrTail.slice(-10), uptimeMs: Date.now() - runner.startedAt },
        });
      }
      if (phase === "ready")
        this.lifecycle.move(id, "failed", exit.reason.message, { code: exit.reason.code, backend: slot.servedBy?.backend.name ?? null });
      this.emit("unload", { model: id, reason: exit.reason.code } satisfies ModelUnloadEvent);
    }
    slot.drainReason = null;
    // requests that waited for this model get a fresh runner (lazily: only because someone is waiting)
    if (!this.closed && this.admission.waitingFor(id) > 0) {
      try {
        this.requestLoad(slot, true);
      } catch (error) {
        this.admission.rejectModel(id, asLmx(error));
      }
    }
  }

  private unloadIdle(): void {
    const now = Date.now();
    for (const [id, slot] of this.slots) {
      const ttl = slot.descriptor.keepAliveMs;
      if (ttl === null || slot.descriptor.pinned || !this.isReady(slot) || slot.opsPending > 0) continue;
      if (this.admission.activity(id) > 0 || now - slot.lastUsed < ttl) continue;
      void this.serialized(slot, () => this.unloadNow(slot, this.options.unloadGraceMs, "idle past keep_alive")).catch(() => {});
    }
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private serialized<T>(slot: ModelSlot, command: () => Promise<T>): Promise<T> {
    slot.opsPending++;
    return slot.ops.run(command).finally(() => slot.opsPending--);
  }

  private slotFor(descriptor: ModelDescriptor): ModelSlot {
    let slot = this.slots.get(descriptor.id);
    if (!slot) {
      slot = {
        descriptor,
        runner: null,
        token: null,
        ops: new Mutex(),
        opsPending: 0,
        pendingLoad: null,
        lastUsed: 0,
        requestsServed: 0,
        loads: 0,
        lastError: null,
        wanted: false,
        overrides: {},
        overrideSources: {},
        servedBy: null,
        drainReason: null,
        interactiveSlots: 0,
        yieldingFor: new Set(),
        readyAt: 0,
        grantedSinceReady: 0,
        groupAtReady: 0,
        demand: { value: 0, at: Date.now() },
        lastLoadMs: 0,
      };
      this.slots.set(descriptor.id, slot);
    } else if (!slot.runner && slot.opsPending === 0) {
      // settings or path may have changed in the inventory since the last load
      slot.descriptor = descriptor;
    }
    return slot;
  }

  private effectiveSettings(slot: ModelSlot): ResolvedRunnerSettings {
    return { ...slot.descriptor.settings, ...slot.overrides };
  }

  private refuseIfClosed(): void {
    if (this.closed) throw shuttingDown();
  }

  private noteFailure(slot: ModelSlot, backend: string, error: LmxError, durationMs: number): void {
    slot.lastError = { code: error.code, message: error.message, at: new Date().toISOString() };
    this.emit("load", { model: slot.descriptor.id, backend, outcome: "failure", code: error.code, durationMs } satisfies ModelLoadEvent);
    this.options.log("error", "model load failed", {
      model: slot.descriptor.id,
      backend,
      code: error.code,
      message: error.message,
      details: error.details,
    });
  }

  private refuseQuarantined(descriptor: ModelDescriptor, key: CompatibilityKey | null, reasons: string[]): LmxError {
    if (key) this.options.registry.record(key, "refused", { reason: "model_quarantined", message: `last failures: ${reasons.join(", ")}` });
    return new LmxError(
      "model_quarantined",
      `model '${descriptor.id}' is quarantined after ${this.options.quarantineAfter} consecutive failed loads (last: ${reasons.join(", ") || "unknown"}); POST /admin/models/unquarantine to try again`,
      { param: "model", details: { lastReasons: reasons } },
    );
  }
}

function decayedDemand(slot: { demand: { value: number; at: number } }, now: number): number {
  return slot.demand.value * Math.pow(0.5, (now - slot.demand.at) / DEMAND_HALF_LIFE_MS);
}

/** Why no backend here opens a model, in the words that help most. */
function noBackendFor(descriptor: ModelDescriptor): LmxError {
  if (descriptor.settings.draftModel) {
    return new LmxError(
      "backend_unavailable",
      `'${descriptor.id}' is configured with a draft model (speculative decoding), which only the llama-server engine runs, and there is none here: lmx engines build llama-server, or remove draft_model`,
      { param: "model" },
    );
  }
  return new LmxError(
    "backend_unavailable",
    `model '${descriptor.id}' is ${descriptor.format}; no backend on this machine opens it (the llama.cpp engines need GGUF)`,
    {
      param: "model",
    },
  );
}

function shuttingDown(): LmxError {
  return new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
}

function asLmx(error: unknown): LmxError {
  return error instanceof LmxError ? error : new LmxError("model_loader_crashed", String((error as Error)?.message ?? error));
}

/** At most `limit` sections at once; the rest wait in arrival order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(section: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await section();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
