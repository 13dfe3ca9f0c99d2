/**
 * The memory the server lets models use, and what each loaded or loading model holds of it.
 * A load reserves its estimate before it starts; once loaded, the reservation becomes what llama.cpp reports
 * it allocated. So two loads started at once cannot both take the last free gigabyte.
 */
import os from "node:os";

export interface MemoryBudgetOptions {
  maxPercent: number;
  budgetBytes: number | null;
  runnerOverheadBytes: number;
  totalBytes?: number;
}

export interface Reservation {
  bytes: number;
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

  fits(bytes: number): boolean {
    return this.usedBytes + bytes <= this.budgetBytes;
  }

  reserve(token: string, model: string, bytes: number, kind: Reservation["kind"]): void {
    this.reservations.set(token, { model, bytes, kind });
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
      found = { bytes: (found?.bytes ?? 0) + r.bytes, kind: found?.kind === "estimate" || r.kind === "estimate" ? "estimate" : "actual" };
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
