/**
 * Turns generated tokens into text safely for streaming:
 * - holds tokens back while they end inside a multi-byte UTF-8 character, so a client never gets U+FFFD halves;
 * - holds text back while it could be the start of a stop string, and cuts exactly at a stop string.
 * Pure logic (the detokenizer is injected) so it is unit-tested without a model.
 */
export type Detokenize<T> = (tokens: readonly T[], lastTokens: readonly T[]) => string;

const REPLACEMENT = "\uFFFD";
/** A UTF-8 character spans at most 4 byte tokens; past that the bytes are really invalid and are emitted. */
const MAX_PENDING_TOKENS = 4;
const CONTEXT_TOKENS = 4;

export class IncrementalDetokenizer<T = number> {
  private pending: T[] = [];
  private lastTokens: T[] = [];

  constructor(
    private readonly detokenize: Detokenize<T>,
    initialContext: readonly T[] = [],
  ) {
    this.lastTokens = initialContext.slice(-CONTEXT_TOKENS);
  }

  /** Returns the text that is now final ("" while a character is incomplete). */
  push(token: T): string {
    this.pending.push(token);
    const text = this.detokenize(this.pending, this.lastTokens);
    if (text.endsWith(REPLACEMENT) && this.pending.length < MAX_PENDING_TOKENS) return "";
    this.commitPending();
    return text;
  }

  /** Whatever is still held (an incomplete character at the very end). */
  flush(): string {
    if (this.pending.length === 0) return "";
    const text = this.detokenize(this.pending, this.lastTokens);
    this.commitPending();
    return text;
  }

  private commitPending(): void {
    this.lastTokens = [...this.lastTokens, ...this.pending].slice(-CONTEXT_TOKENS);
    this.pending = [];
  }
}

export interface StopScan {
  /** Text safe to send now. */
  emit: string;
  /** True when a stop string was found: `emit` ends right before it and generation must stop. */
  stopped: boolean;
  /** The stop string that was found (when `stopped`). */
  word?: string;
}

export class StopStringMatcher {
  private held = "";
  private readonly maxStopLength: number;

  constructor(private readonly stops: readonly string[]) {
    this.maxStopLength = stops.reduce((max, s) => Math.max(max, s.length), 0);
  }

  push(text: string): StopScan {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    this.held += text;
    let cut = -1;
    let word = "";
    for (const stop of this.stops) {
      const index = this.held.indexOf(stop);
      if (index !== -1 && (cut === -1 || index < cut)) {
        cut = index;
        word = stop;
      }
    }
    if (cut !== -1) {
      const emit = this.held.slice(0, cut);
      this.held = "";
      return { emit, stopped: true, word };
    }
    const keep = this.longestStopPrefixSuffix();
    const emit = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { emit, stopped: false };
  }

  /** At the end of generation nothing can complete a stop string any more: release what was held. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  private longestStopPrefixSuffix(): number {
    const limit = Math.min(this.held.length, this.maxStopLength - 1);
    for (let length = limit; length > 0; length--) {
      const suffix = this.held.slice(this.held.length - length);
      if (this.stops.some((stop) => stop.startsWith(suffix))) return length;
    }
    return 0;
  }
}
