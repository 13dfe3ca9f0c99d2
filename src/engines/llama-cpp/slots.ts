import type { LlamaContextSequence, Token } from "node-llama-cpp";

/** One sequence of the shared context: a request runs on exactly one slot at a time. */
export interface Slot {
  readonly index: number;
  readonly sequence: LlamaContextSequence;
  busy: boolean;
  lastUsed: number;
}

export interface SlotChoice {
  slot: Slot;
  /** Tokens of the prompt already in this slot's KV cache (always leaves at least one token to evaluate). */
  reusable: number;
}

/**
 * Places a request on the idle sequence whose cache shares the longest prefix with its prompt,
 * so multi-turn chats and shared system prompts skip re-evaluating what is cached.
 * Ties go to the least recently used slot, so cold slots are recycled before warm ones.
 */
export function pickSlot(slots: readonly Slot[], promptTokens: readonly Token[]): SlotChoice | null {
  let best: SlotChoice | null = null;
  for (const slot of slots) {
    if (slot.busy) continue;
    const shared = sharedPrefixLength(slot.sequence.contextTokens, promptTokens);
    const reusable = Math.min(shared, promptTokens.length - 1);
    if (
      best === null ||
      reusable > best.reusable ||
      (reusable === best.reusable && slot.lastUsed < best.slot.lastUsed)
    ) {
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
