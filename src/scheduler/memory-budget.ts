/**
 * The memory the server lets models use, and what each loaded or loading model holds of it.
 * A load reserves its estimate before it starts; once loaded, the reservation becomes what llama.cpp reports
 * it allocated. So two loads started at once cannot both take the last free gigabyte.
 */
import os from "node:os";
import type { GpuDevice } from "./gpu-devices.js";

export interface MemoryBudgetOptions {
  maxPercent: number;
  budgetBytes: number | null;
  runnerOverheadBytes: number;
  totalBytes?: number;
  /** The GPUs whose memory is budgeted too (none: no GPU budget). */
  gpus?: readonly GpuDevice[];
  /** Share of each GPU's total memory models may use (memory.gpu_max_percent). */
  gpuMaxPercent?: number;
  /** An absolute budget per GPU instead (memory.gpu_budget_bytes). */
  gpuBudgetBytes?: number | null;
  /** What a runner on a GPU holds there besides its estimate (the CUDA context). */
  gpuRunnerOverheadBytes?: number;
}

export interface Reservation {
  bytes: number;
  /** Per GPU, in the order of `gpus`; empty where there are no GPUs. */
  vram: number[];
  kind: "estimate" | "actual";
}

interface Held extends Reservation {
  model: string;
}

export class MemoryBudget {
  /**
   * Keyed by a token per runner (or load attempt), not by model: an old runner that is still draining and the
   * new runner of the same model each hold their own memory until each is gone.
   */
  private readonly reservations = new Map<string, Held>();
  readonly totalBytes: number;

  constructor(private readonly options: MemoryBudgetOptions) {
    this.totalBytes = options.totalBytes ?? os.totalmem();
  }

  get gpus(): readonly GpuDevice[] {
    return this.options.gpus ?? [];
  }

  /**
   * Each GPU's budget: gpu_budget_bytes as given, or gpu_max_percent of its total less what other processes
   * already used when the gateway started (a GPU shared with something else has less to give).
   */
  get gpuBudgets(): number[] {
    return this.gpus.map((g) => {
      if (this.options.gpuBudgetBytes) return this.options.gpuBudgetBytes;
      return Math.max(0, Math.min(Math.floor((g.totalBytes * (this.options.gpuMaxPercent ?? 90)) / 100), g.totalBytes - g.usedBytes));
    });
  }

  get gpuRunnerOverheadBytes(): number {
    return this.options.gpuRunnerOverheadBytes ?? 0;
  }

  /** Reserved per GPU, all runners together. */
  get gpuUsed(): number[] {
    const used = this.gpus.map(() => 0);
    for (const r of this.reservations.values()) r.vram.forEach((bytes, i) => (used[i] = (used[i] ?? 0) + bytes));
    return used;
  }

  get budgetBytes(): number {
    return this.options.budgetBytes ?? Math.floor((this.totalBytes * this.options.maxPercent) / 100);
  }

  get runnerOverheadBytes(): number {
    return this.options.runnerOverheadBytes;
  }

  get usedBytes(): number {
    let sum = 0;
    for (const r of this.reservations.values()) sum += r.bytes;
    return sum;
  }

  fits(bytes: number, vram: readonly number[] = []): boolean {
    const used = this.gpuUsed;
    const budgets = this.gpuBudgets;
    return this.usedBytes + bytes <= this.budgetBytes && vram.every((v, i) => v <= 0 || (used[i] ?? 0) + v <= (budgets[i] ?? 0));
  }

  reserve(token: string, model: string, bytes: number, kind: Reservation["kind"], vram: readonly number[] = []): void {
    this.reservations.set(token, { model, bytes, kind, vram: [...vram] });
  }

  /** What one runner (or load attempt) holds on each GPU. */
  heldVram(token: string): number[] {
    return this.reservations.get(token)?.vram ?? this.gpus.map(() => 0);
  }

  release(token: string): void {
    this.reservations.delete(token);
  }

  /** What one runner (or load attempt) holds. */
  held(token: string): number {
    return this.reservations.get(token)?.bytes ?? 0;
  }

  /** What all runners of a model hold together; "estimate" while any of them is not measured yet. */
  reservation(model: string): Reservation | null {
    let found = null as Reservation | null;
    for (const r of this.reservations.values()) {
      if (r.model !== model) continue;
      const vram = this.gpus.map((_, i) => (found?.vram[i] ?? 0) + (r.vram[i] ?? 0));
      found = { bytes: (found?.bytes ?? 0) + r.bytes, vram, kind: found?.kind === "estimate" || r.kind === "estimate" ? "estimate" : "actual" };
    }
    return found;
  }

  private models(): string[] {
    return [...new Set([...this.reservations.values()].map((r) => r.model))];
  }

  snapshot() {
    return {
      total_bytes: this.totalBytes,
      available_bytes: os.freemem(),
      budget_bytes: this.budgetBytes,
      used_bytes: this.usedBytes,
      runner_overhead_bytes: this.runnerOverheadBytes,
      // one entry per GPU nvidia-smi listed at start; [] on a machine without one (no GPU budget)
      gpus: this.gpus.map((g, i) => ({
        index: g.index,
        total_bytes: g.totalBytes,
        used_by_others_at_start_bytes: g.usedBytes,
        budget_bytes: this.gpuBudgets[i] ?? 0,
        used_bytes: this.gpuUsed[i] ?? 0,
      })),
      gpu_runner_overhead_bytes: this.gpuRunnerOverheadBytes,
      models: Object.fromEntries(this.models().map((model) => [model, this.reservation(model)])),
    };
  }
}

/** Runs async sections one at a time: admission decisions must see each other's reservations. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section);
    this.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }
}
