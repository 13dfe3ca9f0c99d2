/**
 * Decides when a request may run: at most as many at once per model as the runner serving it has sequences,
 * and `maxConcurrent` across the server. Everyone else waits here, in one FIFO that is bounded and visible,
 * never in a hidden buffer inside a runner. A full queue answers 429 at once; a long wait answers 503.
 *
 * Capacity is asked of the scheduler at every dispatch (`capacityOf`), so it is always the serving runner's,
 * and 0 while the model is loading, draining or unloaded: waiters for such a model simply stay in line.
 */
import { EventEmitter } from "node:events";
import { LmxError } from "../errors/codes.js";

export interface AdmissionOptions {
  maxConcurrent: number;
  queueSize: number;
  queueTimeoutMs: number;
  /** Sequences the runner serving `modelId` has now; 0 when none is ready. */
  capacityOf: (modelId: string) => number;
}

export interface Slot {
  release(): void;
}

interface Waiter {
  modelId: string;
  grant: (slot: Slot) => void;
  fail: (error: LmxError) => void;
}

export interface AdmissionSnapshot {
  running: number;
  waiting: number;
  per_model: Record<string, { running: number; waiting: number }>;
}

/** Emits "depth" ({running, waiting}) whenever either number changes. */
export class AdmissionQueue extends EventEmitter {
  private running = 0;
  private readonly runningPerModel = new Map<string, number>();
  private readonly waiters: Waiter[] = [];

  constructor(private readonly options: AdmissionOptions) {
    super();
  }

  acquire(modelId: string, signal?: AbortSignal): Promise<Slot> {
    if (signal?.aborted) return Promise.reject(new LmxError("invalid_request", "request was cancelled"));
    // Waiters of other models are blocked only by their own model's capacity (canRun checks the global one),
    // so a request may pass them; it may never pass an earlier request for the same model.
    if (this.canRun(modelId) && !this.waiters.some((w) => w.modelId === modelId)) {
      return Promise.resolve(this.grant(modelId));
    }
    if (this.waiters.length >= this.options.queueSize) {
      return Promise.reject(
        new LmxError("queue_full", `the server is busy: ${this.waiters.length} requests are already waiting (queue_size)`, {
          retryAfterSec: 1,
        }),
      );
    }
    return new Promise<Slot>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        modelId,
        grant: (slot) => {
          cleanup();
          resolve(slot);
        },
        fail: (error) => {
          cleanup();
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.remove(waiter);
        waiter.fail(
          new LmxError("queue_timeout", `waited ${Math.round(this.options.queueTimeoutMs / 1000)}s for a free sequence of '${modelId}' (queue_timeout_sec)`, {
            retryAfterSec: 5,
          }),
        );
      }, this.options.queueTimeoutMs);
      const onAbort = () => {
        this.remove(waiter);
        waiter.fail(new LmxError("invalid_request", "request was cancelled while waiting"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.changed();
    });
  }

  /** Requests running or waiting for a model: a model with any is never evicted or unloaded for idleness. */
  activity(modelId: string): number {
    return (this.runningPerModel.get(modelId) ?? 0) + this.waitingFor(modelId);
  }

  waitingFor(modelId: string): number {
    let n = 0;
    for (const w of this.waiters) if (w.modelId === modelId) n++;
    return n;
  }

  runningFor(modelId: string): number {
    return this.runningPerModel.get(modelId) ?? 0;
  }

  snapshot(): AdmissionSnapshot {
    const perModel: AdmissionSnapshot["per_model"] = {};
    for (const [id, running] of this.runningPerModel) perModel[id] = { running, waiting: 0 };
    for (const w of this.waiters) (perModel[w.modelId] ??= { running: 0, waiting: 0 }).waiting++;
    return { running: this.running, waiting: this.waiters.length, per_model: perModel };
  }

  /** Fails everyone waiting for one model (its load failed: they would otherwise wait for nothing). */
  rejectModel(modelId: string, error: LmxError): void {
    const failing = this.waiters.filter((w) => w.modelId === modelId);
    for (const waiter of failing) this.remove(waiter);
    for (const waiter of failing) waiter.fail(error);
  }

  /** Fails everyone still waiting (used at shutdown). */
  rejectAll(error: LmxError): void {
    const all = this.waiters.splice(0);
    if (all.length > 0) this.changed();
    for (const waiter of all) waiter.fail(error);
  }

  /** Grants waiters in arrival order, skipping those whose model is at capacity so one busy model cannot block others. */
  dispatch(): void {
    let granted = false;
    for (let i = 0; i < this.waiters.length && this.running < this.options.maxConcurrent; ) {
      const waiter = this.waiters[i]!;
      if (this.canRun(waiter.modelId)) {
        this.waiters.splice(i, 1);
        granted = true;
        waiter.grant(this.grant(waiter.modelId, false));
      } else {
        i++;
      }
    }
    if (granted) this.changed();
  }

  private remove(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter);
    if (index === -1) return;
    this.waiters.splice(index, 1);
    this.changed();
  }

  private canRun(modelId: string): boolean {
    return this.running < this.options.maxConcurrent && (this.runningPerModel.get(modelId) ?? 0) < this.options.capacityOf(modelId);
  }

  private grant(modelId: string, announce = true): Slot {
    this.running++;
    this.runningPerModel.set(modelId, (this.runningPerModel.get(modelId) ?? 0) + 1);
    if (announce) this.changed();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.running--;
        const left = (this.runningPerModel.get(modelId) ?? 1) - 1;
        if (left === 0) this.runningPerModel.delete(modelId);
        else this.runningPerModel.set(modelId, left);
        this.changed();
        this.dispatch();
      },
    };
  }

  private changed(): void {
    this.emit("depth", { running: this.running, waiting: this.waiters.length });
  }
}
