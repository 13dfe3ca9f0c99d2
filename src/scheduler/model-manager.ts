/**
 * Which models have runners, and getting one when a request needs it: exactly one load per model at a time
 * (everyone else awaits the same promise), just-in-time loads, and reload after a crash.
 */
import type { Backend, RunnerExit, RunnerHandle, StartOptions } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";

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
}

export interface ModelManagerOptions {
  jitLoad: boolean;
  start: Omit<StartOptions, "log">;
  log: StartOptions["log"];
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
}

export class ModelManager {
  private readonly states = new Map<string, ModelState>();
  private closed = false;

  constructor(
    private readonly backends: readonly Backend[],
    private readonly options: ModelManagerOptions,
  ) {}

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

  touch(id: string): void {
    const state = this.states.get(id);
    if (state) {
      state.lastUsed = Date.now();
      state.requestsServed++;
    }
  }

  runnerFor(id: string): RunnerHandle | null {
    const runner = this.states.get(id)?.runner;
    return runner && !runner.exit ? runner : null;
  }

  async unload(id: string, graceMs: number): Promise<boolean> {
    const state = this.states.get(id);
    if (!state) return false;
    state.wanted = false;
    if (state.loading) await state.loading.catch(() => {});
    const runner = state.runner;
    state.runner = null;
    if (!runner || runner.exit) return false;
    await runner.stop(graceMs);
    this.options.log("info", "model unloaded", { model: id });
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
    await Promise.all([...this.states.keys()].map((id) => this.unload(id, graceMs)));
  }

  private stateFor(descriptor: ModelDescriptor): ModelState {
    let state = this.states.get(descriptor.id);
    if (!state) {
      state = { descriptor, runner: null, loading: null, lastUsed: 0, requestsServed: 0, loads: 0, lastError: null, wanted: false };
      this.states.set(descriptor.id, state);
    } else if (!state.runner) {
      // settings or path may have changed in the inventory since the last load
      state.descriptor = descriptor;
    }
    return state;
  }

  private async startRunner(state: ModelState): Promise<RunnerHandle> {
    const descriptor = state.descriptor;
    const backend = this.backends.find((b) => b.canServe(descriptor));
    if (!backend) {
      throw new LmxError("backend_unavailable", `no backend on this machine can open '${descriptor.path}'`);
    }
    const started = Date.now();
    this.options.log("info", "loading model", { model: descriptor.id, path: descriptor.path, backend: backend.name, settings: descriptor.settings });
    let runner: RunnerHandle;
    try {
      runner = await backend.start(descriptor, { ...this.options.start, log: this.options.log });
    } catch (error) {
      const lmx = error instanceof LmxError ? error : new LmxError("model_loader_crashed", String((error as Error)?.message ?? error));
      state.lastError = { code: lmx.code, message: lmx.message, at: new Date().toISOString() };
      this.options.log("error", "model load failed", { model: descriptor.id, code: lmx.code, message: lmx.message, details: lmx.details });
      throw lmx;
    }
    state.loads++;
    state.runner = runner;
    state.lastUsed = Date.now();
    this.options.log("info", "model loaded", { model: descriptor.id, ms: Date.now() - started, pid: runner.pid });
    void runner.exited.then((exit) => this.onRunnerExit(state, runner, exit));
    if (this.closed) {
      await runner.stop(0);
      throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
    }
    return runner;
  }

  private onRunnerExit(state: ModelState, runner: RunnerHandle, exit: RunnerExit): void {
    if (state.runner === runner) state.runner = null;
    if (exit.reason !== "stopped") {
      state.lastError = { code: exit.reason.code, message: exit.reason.message, at: new Date().toISOString() };
    }
  }
}
