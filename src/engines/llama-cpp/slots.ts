import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { LmxError } from "../../errors/codes.js";

/** One sequence of the shared context: a request runs on exactly one slot at a time. */
export interface Slot {
  readonly index: number;
  readonly sequence: LlamaContextSequence;
  /** The lease of the request running on it; null when idle. */
  owner: SlotLease | null;
  lastUsed: number;
}

export interface SlotChoice {
  slot: Slot;
  /** Tokens of the prompt already in this slot's KV cache (always leaves at least one token to evaluate). */
  reusable: number;
}

/** A slot held by one request, from the moment it is chosen until `SlotPool.release`. */
export interface SlotLease extends SlotChoice {
  released: boolean;
}

/**
 * Places a request on the idle sequence whose cache shares the longest prefix with its prompt,
 * so multi-turn chats and shared system prompts skip re-evaluating what is cached.
 * Ties go to the least recently used slot, so cold slots are recycled before warm ones.
 */
export function pickSlot(slots: readonly Slot[], promptTokens: readonly Token[]): SlotChoice | null {
  let best: SlotChoice | null = null;
  for (const slot of slots) {
    if (slot.owner !== null) continue;
    const shared = sharedPrefixLength(slot.sequence.contextTokens, promptTokens);
    const reusable = Math.min(shared, promptTokens.length - 1);
    if (best === null || reusable > best.reusable || (reusable === best.reusable && slot.lastUsed < best.slot.lastUsed)) {
      best = { slot, reusable: Math.max(0, reusable) };
    }
  }
  return best;
}

export function sharedPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const limit = Math.min(a.length, b.length);
  let i = 0;
  while (i < limit && a[i] === b[i]) i++;
  return i;
}

interface Waiter {
  tokens: readonly Token[];
  /** Takes a slot chosen for this waiter; called synchronously by `release`. */
  grant(lease: SlotLease): void;
}

/**
 * Who runs on which sequence. Choosing a slot and marking it taken happen in one synchronous step, both
 * when a request finds an idle slot and when a freed slot is handed to a waiter: a slot marked only after an
 * `await` could be handed to two waiters of one release (both then decode into the same KV cache and answer
 * garbage with HTTP 200). Leases make a second release of the same lease harmless.
 */
export class SlotPool {
  /** FIFO: the earliest waiter chooses first. */
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly slots: readonly Slot[],
    private readonly waitMs: number,
  ) {}

  get busy(): number {
    return this.slots.filter((s) => s.owner !== null).length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * A slot for this prompt, now if one is idle (and nobody waits before us), else the first one freed for us.
   * Waiting ends with `runner_busy` (and a Retry-After) after `waitMs`, or with the signal's reason when the
   * client leaves.
   */
  acquire(tokens: readonly Token[], signal: AbortSignal): Promise<SlotLease> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0) {
      const choice = pickSlot(this.slots, tokens);
      if (choice) return Promise.resolve(this.take(choice));
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
      };
      const waiter: Waiter = {
        tokens,
        grant: (lease) => {
          leave();
          resolve(lease);
        },
      };
      const onAbort = () => {
        leave();
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        leave();
        reject(new LmxError("runner_busy", "all sequences of this model stayed busy; retry shortly", { retryAfterSec: 1 }));
      }, this.waitMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Frees the lease's slot (once; later calls do nothing) and hands idle slots to waiters in order. */
  release(lease: SlotLease): void {
    if (lease.released) return;
    lease.released = true;
    const { slot } = lease;
    if (slot.owner !== lease) throw new Error(`slot ${slot.index} released by a request that does not hold it`);
    slot.owner = null;
    slot.lastUsed = performance.now();
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0]!;
      const choice = pickSlot(this.slots, waiter.tokens);
      if (!choice) break;
      waiter.grant(this.take(choice));
    }
  }

  private take(choice: SlotChoice): SlotLease {
    const lease: SlotLease = { ...choice, released: false };
    choice.slot.owner = lease;
    return lease;
  }
}
