/**
 * Reads what metrics need from a runner's answer without parsing it per token: the gateway relays bytes, and a
 * JSON.parse per SSE event would cost more than the relaying itself. JSON keeps this sound: inside a string
 * value every `"` is escaped, so a byte pattern such as `"content":"` can only ever be a real key.
 */

const QUOTE = 0x22;
const NEWLINE = 0x0a;

/** A generated piece: chat (`delta.content`) or completion (`text`) with a non-empty value. */
const TOKEN_PATTERNS = [Buffer.from('"content":"'), Buffer.from('"text":"')];
/** The last content event of an OpenAI stream is the one whose finish_reason is not null. */
const FINISH_PATTERN = Buffer.from('"finish_reason":"');
const PATTERNS = [...TOKEN_PATTERNS, FINISH_PATTERN];
/** A match plus the byte after it may start this many bytes before a chunk boundary. */
const CARRY = Math.max(...PATTERNS.map((p) => p.length));

/**
 * Counts token events in an SSE stream chunk by chunk, including events cut in two by a chunk boundary.
 * Each event is counted once, in the chunk holding the byte after its key (which tells `""` from a piece).
 */
export class SseTokenScanner {
  /** True once the finish event (non-null finish_reason) went by. */
  finished = false;
  private readonly carry = Buffer.alloc(CARRY);
  private carryLength = 0;
  private readonly window = Buffer.alloc(CARRY * 2);

  /** Token events completed by this chunk. */
  scan(chunk: Buffer): number {
    let tokens = 0;
    for (const pattern of PATTERNS) {
      let at = chunk.indexOf(pattern);
      // only matches whose following byte is in this chunk; one at the very end is counted with the next chunk
      while (at !== -1 && at + pattern.length < chunk.length) {
        tokens += this.hit(pattern, chunk[at + pattern.length]!);
        at = chunk.indexOf(pattern, at + pattern.length);
      }
    }
    if (this.carryLength > 0) tokens += this.scanBoundary(chunk);
    this.keepTail(chunk);
    return tokens;
  }

  private hit(pattern: Buffer, next: number): number {
    if (pattern === FINISH_PATTERN) {
      this.finished = true;
      return 0;
    }
    return next === QUOTE ? 0 : 1;
  }

  /** Matches that start in the previous bytes and whose following byte is in this chunk. */
  private scanBoundary(chunk: Buffer): number {
    const head = Math.min(chunk.length, CARRY);
    this.carry.copy(this.window, 0, 0, this.carryLength);
    chunk.copy(this.window, this.carryLength, 0, head);
    const length = this.carryLength + head;
    const view = this.window.subarray(0, length);
    let tokens = 0;
    for (const pattern of PATTERNS) {
      let at = view.indexOf(pattern);
      while (at !== -1 && at < this.carryLength) {
        const next = at + pattern.length;
        if (next >= this.carryLength && next < length) tokens += this.hit(pattern, view[next]!);
        at = view.indexOf(pattern, at + 1);
      }
    }
    return tokens;
  }

  private keepTail(chunk: Buffer): void {
    const end = chunk.length;
    // The usual chunk is whole events: nothing can straddle an event boundary, so nothing needs carrying.
    if (end >= 2 && chunk[end - 1] === NEWLINE && chunk[end - 2] === NEWLINE) {
      this.carryLength = 0;
      return;
    }
    if (chunk.length >= CARRY) {
      chunk.copy(this.carry, 0, chunk.length - CARRY);
      this.carryLength = CARRY;
      return;
    }
    // a chunk shorter than a pattern: the tail is the end of (previous tail + chunk)
    const joined = Buffer.concat([this.carry.subarray(0, this.carryLength), chunk]);
    const keep = Math.min(CARRY, joined.length);
    joined.copy(this.carry, 0, joined.length - keep);
    this.carryLength = keep;
  }
}

/**
 * The last bytes of a response, kept by reference (no copying) while it streams: the usage and timings are at
 * the end of both a stream (final event, usage event, [DONE]) and a whole JSON body.
 */
export class ResponseTail {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly keepBytes = 16 * 1024) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.length >= this.keepBytes) {
      this.bytes -= this.chunks.shift()!.length;
    }
  }

  buffer(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens reused from the runner's KV cache (part of promptTokens). */
  cachedTokens: number;
}

const TIMINGS_KEY = Buffer.from('"timings":{');
const USAGE_KEY = Buffer.from('"usage":{');

/**
 * Token counts from the end of an answer: llama-server-style `timings` (the final stream event, or a whole
 * body), else OpenAI `usage` (the usage event of a stream, or a whole body). Null when neither is there.
 */
export function usageFromTail(tail: Buffer): TokenUsage | null {
  const timings = objectAfter(tail, TIMINGS_KEY);
  if (timings) {
    const cached = num(timings["cache_n"]);
    return { promptTokens: num(timings["prompt_n"]) + cached, completionTokens: num(timings["predicted_n"]), cachedTokens: cached };
  }
  const usage = objectAfter(tail, USAGE_KEY);
  if (usage) {
    const details = usage["prompt_tokens_details"];
    const cached = details && typeof details === "object" ? num((details as Record<string, unknown>)["cached_tokens"]) : 0;
    return { promptTokens: num(usage["prompt_tokens"]), completionTokens: num(usage["completion_tokens"]), cachedTokens: cached };
  }
  return null;
}

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** The JSON object that follows the last occurrence of `key` (which ends with its `{`), parsed on its own. */
function objectAfter(tail: Buffer, key: Buffer): Record<string, unknown> | null {
  const at = tail.lastIndexOf(key);
  if (at === -1) return null;
  const start = at + key.length - 1;
  let depth = 0;
  let inString = false;
  for (let i = start; i < tail.length; i++) {
    const byte = tail[i]!;
    if (inString) {
      if (byte === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === 0x7b) {
      depth++;
    } else if (byte === 0x7d && --depth === 0) {
      try {
        const value: unknown = JSON.parse(tail.subarray(start, i + 1).toString("utf8"));
        return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
      } catch {
        return null;
      }
    }
  }
  return null;
}
