/**
 * Decides when a request may run: at most `capacity` at once per model (its runner's sequences) and
 * `maxConcurrent` across the server. Everyone else waits here, in one FIFO that is bounded and visible,
 * never in a hidden buffer inside a runner. A full queue answers 429 at once; a long wait answers 503.
 */
import { LmxError } from "../errors/codes.js";

export interface AdmissionOptions {
  maxConcurrent: number;
  queueSize: number;
  queueTimeoutMs: number;
}

export interface Lease {
  release(): void;
}

interface Waiter {
  modelId: string;
  capacity: number;
  grant: (lease: Lease) => void;
  fail: (error: LmxError) => void;
}

export interface AdmissionSnapshot {
  running: number;
  waiting: number;
  perModel: Record<string, { running: number; waiting: number }>;
}

export class AdmissionQueue {
  private running = 0;
  private readonly runningPerModel = new Map<string, number>();
  private readonly waiters: Waiter[] = [];

  constructor(private readonly options: AdmissionOptions) {}

  acquire(modelId: string, capacity: number, signal?: AbortSignal): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(new LmxError("invalid_request", "request was cancelled"));
    // Waiters of other models are blocked only by their own model's capacity (canRun checks the global one),
    // so a request may pass them; it may never pass an earlier request for the same model.
    if (this.canRun(modelId, capacity) && !this.waiters.some((w) => w.modelId === modelId)) {
      return Promise.resolve(this.grant(modelId));
    }
    if (this.waiters.length >= this.options.queueSize) {
      return Promise.reject(
        new LmxError("queue_full", `the server is busy: ${this.waiters.length} requests are already waiting (queue_size)`, {
          retryAfterSec: 1,
        }),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        modelId,
        capacity,
        grant: (lease) => {
          cleanup();
          resolve(lease);
        },
        fail: (error) => {
          cleanup();
          reject(error);
        },
      };
      const remove = () => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
      };
      const timer = setTimeout(() => {
        remove();
        waiter.fail(
          new LmxError("queue_timeout", `waited ${Math.round(this.options.queueTimeoutMs / 1000)}s for a free sequence of '${modelId}' (queue_timeout_sec)`, {
            retryAfterSec: 5,
          }),
        );
      }, this.options.queueTimeoutMs);
      const onAbort = () => {
        remove();
        waiter.fail(new LmxError("invalid_request", "request was cancelled while waiting"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  snapshot(): AdmissionSnapshot {
    const perModel: AdmissionSnapshot["perModel"] = {};
    for (const [id, running] of this.runningPerModel) perModel[id] = { running, waiting: 0 };
    for (const w of this.waiters) (perModel[w.modelId] ??= { running: 0, waiting: 0 }).waiting++;
    return { running: this.running, waiting: this.waiters.length, perModel };
  }

  /** Fails everyone still waiting (used at shutdown). */
  rejectAll(error: LmxError): void {
    for (const waiter of this.waiters.splice(0)) waiter.fail(error);
  }

  private canRun(modelId: string, capacity: number): boolean {
    return this.running < this.options.maxConcurrent && (this.runningPerModel.get(modelId) ?? 0) < capacity;
  }

  private grant(modelId: string): Lease {
    this.running++;
    this.runningPerModel.set(modelId, (this.runningPerModel.get(modelId) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.running--;
        const left = (this.runningPerModel.get(modelId) ?? 1) - 1;
        if (left === 0) this.runningPerModel.delete(modelId);
        else this.runningPerModel.set(modelId, left);
        this.dispatch();
      },
    };
  }

  /** Grants waiters in arrival order, skipping those whose model is at capacity so one busy model cannot block others. */
  private dispatch(): void {
    for (let i = 0; i < this.waiters.length && this.running < this.options.maxConcurrent; ) {
      const waiter = this.waiters[i]!;
      if (this.canRun(waiter.modelId, waiter.capacity)) {
        this.waiters.splice(i, 1);
        waiter.grant(this.grant(waiter.modelId));
      } else {
        i++;
      }
    }
  }
}
