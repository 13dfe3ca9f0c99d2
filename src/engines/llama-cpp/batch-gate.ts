/**
 * Keeps concurrent sequences in the same decode.
 *
 * node-llama-cpp's dispatch loop re-checks its queue right after a batch's results are handed out. The last
 * sequence to receive its token needs a few more microtask hops (sampler → evaluate generator → our loop →
 * next evaluate) than the loop's own check, so it always missed the next batch: with 4 sequences nearly
 * every decode carried 3, and each sequence skipped every fourth decode.
 *
 * As the context's batch prioritization strategy (a public hook) the gate holds a batch while fewer
 * sequences are queued than are generating. Returning an empty batch makes the loop go round again after a
 * microtask turn, so the late sequence joins; after `maxWaits` turns the batch goes anyway, so a sequence
 * that is busy elsewhere (an erase, a finishing request) delays the others by microseconds, never a token.
 * Measured on stories260K, 4 × 96 tokens: 129 decodes (125 of them with 3 sequences) → 96 decodes of 4.
 */
import type { BatchItem, PrioritizedBatchItem } from "node-llama-cpp";

const DEFAULT_MAX_WAITS = 64;

export class BatchGate {
  /** Sequences currently inside a generation loop (each has at most one queued decode at a time). */
  generating = 0;
  private waits = 0;

  constructor(private readonly maxWaits = DEFAULT_MAX_WAITS) {}

  readonly strategy = ({ items, size }: { items: readonly BatchItem[]; size: number }): PrioritizedBatchItem[] => {
    if (items.length < this.generating && this.waits < this.maxWaits) {
      this.waits++;
      return [];
    }
    this.waits = 0;
    return fairShare(items, size);
  };
}

/**
 * Splits the batch's token slots evenly so a long prompt being prefilled cannot starve sequences that are
 * generating one token each; leftovers go to higher-priority items first (node-llama-cpp's "maximum
 * parallelism" policy, restated because it is not exported).
 */
export function fairShare(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  if (items.length === 0) return [];
  let free = size;
  const share = Math.max(1, Math.floor(size / items.length));
  const result: PrioritizedBatchItem[] = [];
  for (const item of items) {
    if (free === 0) break;
    const processAmount = Math.min(item.tokens.length, share, free);
    result.push({ item, processAmount });
    free -= processAmount;
  }
  const clipped = result.filter((p) => p.processAmount < p.item.tokens.length).sort((a, b) => b.item.evaluationPriority - a.item.evaluationPriority);
  for (const p of clipped) {
    if (free === 0) break;
    const more = Math.min(p.item.tokens.length - p.processAmount, free);
    p.processAmount += more;
    free -= more;
  }
  return result;
}
