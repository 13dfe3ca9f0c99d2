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
import { effectiveRank, PRIORITIES, type Priority } from "./priority.js";

export interface AdmissionOptions {
  maxConcurrent: number;
  queueSize: number;
  queueTimeoutMs: number;
  /**
   * Sequences of the runner serving `modelId` that a request of this class may use now; 0 when none is ready.
   * (Interactive requests may use sequences held back from the others.)
   */
  capacityOf: (modelId: string, priority: Priority) => number;
  /** A waiting request climbs one priority class per this many milliseconds (0: never). */
  agingMs?: number;
  /** Waiting requests allowed per class, besides queueSize in total. */
  classQueueSize?: Partial<Record<Priority, number>>;
}

export interface Slot {
  release(): void;
}

interface Waiter {
  modelId: string;
  priority: Priority;
  enqueuedAt: number;
  grant: (slot: Slot) => void;
  fail: (error: LmxError) => void;
}

export interface AdmissionSnapshot {
  running: number;
  waiting: number;
  per_model: Record<string, { running: number; waiting: number }>;
  per_priority: Record<Priority, { running: number; waiting: number }>;
}

/** Emitted as "admitted" for every request that got a sequence, with how long it waited. */
export interface AdmittedEvent {
  modelId: string;
  priority: Priority;
  waitedMs: number;
}

/** Emits "depth" ({running, waiting}) whenever either number changes. */
export class AdmissionQueue extends EventEmitter {
  private running = 0;
  private readonly runningPerModel = new Map<string, number>();
  private readonly runningPerClass = new Map<Priority, number>();
  private readonly waiters: Waiter[] = [];

  constructor(private readonly options: AdmissionOptions) {
    super();
  }

  acquire(modelId: string, signal?: AbortSignal, priority: Priority = "normal"): Promise<Slot> {
    if (signal?.aborted) return Promise.reject(new LmxError("invalid_request", "request was cancelled"));
    // Waiters of other models are blocked only by their own model's capacity (canRun checks the global one),
    // so a request may pass them; it may never pass an earlier request for the same model of its class or above.
    if (
      this.canRun(modelId, priority) &&
      !this.waiters.some(
        (w) =>
          w.modelId === modelId && effectiveRank(w.priority, Date.now() - w.enqueuedAt, this.agingMs) <= effectiveRank(priority, 0, this.agingMs),
      )
    ) {
      return Promise.resolve(this.grant(modelId, priority, 0));
    }
    if (this.waiters.length >= this.options.queueSize) {
      return Promise.reject(
        new LmxError("queue_full", `the server is busy: ${this.waiters.length} requests are already waiting (queue_size)`, {
          retryAfterSec: 1,
        }),
      );
    }
    const classLimit = this.options.classQueueSize?.[priority];
    if (classLimit !== undefined && this.waitingOfClass(priority) >= classLimit) {
      return Promise.reject(
        new LmxError("queue_full", `the server is busy: ${classLimit} ${priority} requests are already waiting (priority.queue_size.${priority})`, {
          retryAfterSec: priority === "batch" ? 5 : 1,
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
        priority,
        enqueuedAt: Date.now(),
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
          new LmxError(
            "queue_timeout",
            `waited ${Math.round(this.options.queueTimeoutMs / 1000)}s for a free sequence of '${modelId}' (queue_timeout_sec)`,
            {
              retryAfterSec: 5,
            },
          ),
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
    const perPriority = Object.fromEntries(
      PRIORITIES.map((p) => [p, { running: this.runningPerClass.get(p) ?? 0, waiting: this.waitingOfClass(p) }]),
    ) as AdmissionSnapshot["per_priority"];
    return { running: this.running, waiting: this.waiters.length, per_model: perModel, per_priority: perPriority };
  }

  private waitingOfClass(priority: Priority): number {
    let n = 0;
    for (const w of this.waiters) if (w.priority === priority) n++;
    return n;
  }

  private get agingMs(): number {
    return this.options.agingMs ?? 0;
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

  /**
   * Grants waiters by priority (after ageing), then arrival, skipping those whose model is at capacity so one
   * busy model cannot block others.
   */
  dispatch(): void {
    if (this.waiters.length === 0) return;
    const now = Date.now();
    const order = this.waiters
      .map((waiter, index) => ({ waiter, index, rank: effectiveRank(waiter.priority, now - waiter.enqueuedAt, this.agingMs) }))
      .sort((a, b) => a.rank - b.rank || a.index - b.index);
    const granted = new Set<Waiter>();
    for (const { waiter } of order) {
      if (this.running >= this.options.maxConcurrent) break;
      if (!this.canRun(waiter.modelId, waiter.priority)) continue;
      granted.add(waiter);
      waiter.grant(this.grant(waiter.modelId, waiter.priority, now - waiter.enqueuedAt, false));
    }
    if (granted.size === 0) return;
    for (let i = this.waiters.length - 1; i >= 0; i--) if (granted.has(this.waiters[i]!)) this.waiters.splice(i, 1);
    this.changed();
  }

  private remove(waiter: Waiter): void {
    const index = this.waiters.indexOf(waiter);
    if (index === -1) return;
    this.waiters.splice(index, 1);
    this.changed();
  }

  private canRun(modelId: string, priority: Priority): boolean {
    return this.running < this.options.maxConcurrent && (this.runningPerModel.get(modelId) ?? 0) < this.options.capacityOf(modelId, priority);
  }

  private grant(modelId: string, priority: Priority, waitedMs: number, announce = true): Slot {
    this.running++;
    this.runningPerModel.set(modelId, (this.runningPerModel.get(modelId) ?? 0) + 1);
    this.runningPerClass.set(priority, (this.runningPerClass.get(priority) ?? 0) + 1);
    this.emit("admitted", { modelId, priority, waitedMs } satisfies AdmittedEvent);
    if (announce) this.changed();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.running--;
        this.runningPerClass.set(priority, (this.runningPerClass.get(priority) ?? 1) - 1);
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
