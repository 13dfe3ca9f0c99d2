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

export class MemoryBudget {
  private readonly reservations = new Map<string, Reservation>();
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

  reserve(id: string, bytes: number, kind: Reservation["kind"]): void {
    this.reservations.set(id, { bytes, kind });
  }

  release(id: string): void {
    this.reservations.delete(id);
  }

  reservation(id: string): Reservation | null {
    return this.reservations.get(id) ?? null;
  }

  snapshot() {
    return {
      total_bytes: this.totalBytes,
      available_bytes: os.freemem(),
      budget_bytes: this.budgetBytes,
      used_bytes: this.usedBytes,
      runner_overhead_bytes: this.runnerOverheadBytes,
      models: Object.fromEntries([...this.reservations].map(([id, r]) => [id, { bytes: r.bytes, kind: r.kind }])),
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
