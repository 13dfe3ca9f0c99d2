/**
 * A strict JSON scanner that reports where values start and end in the text a model wrote. Tool-call parsers
 * need more than `JSON.parse`: whether a value is complete yet (streaming), where it ends (text may follow), and
 * the exact source span of the `arguments` member, which is passed on verbatim so numbers keep every digit.
 */

export interface JsonSpan {
  start: number;
  /** Exclusive. */
  end: number;
  /** An object's members, in order (only for objects within the first two levels). */
  members?: JsonMember[];
  /** An array's items (only for arrays within the first two levels). */
  items?: JsonSpan[];
}

export interface JsonMember {
  key: string;
  value: JsonSpan;
}

export type JsonScan = { kind: "complete"; value: JsonSpan } | { kind: "incomplete" } | { kind: "invalid" };

/** Containers nested deeper than this are rejected rather than risking the stack on hostile text. */
const MAX_DEPTH = 256;
/** Structure (members, items) is recorded only this deep: the parsers never look further. */
const RECORD_DEPTH = 2;

const INCOMPLETE = Symbol("incomplete");
const INVALID = Symbol("invalid");

/** Scans one JSON value starting at `start` (leading whitespace allowed); the rest of the text is not looked at. */
export function scanJsonValue(text: string, start: number): JsonScan {
  const scanner = new Scanner(text, start);
  try {
    scanner.skipWs();
    return { kind: "complete", value: scanner.value(0) };
  } catch (err) {
    if (err === INCOMPLETE) return { kind: "incomplete" };
    if (err === INVALID) return { kind: "invalid" };
    throw err;
  }
}

/** The value of member `key` of an object span, or undefined. */
export function memberOf(span: JsonSpan, key: string): JsonSpan | undefined {
  return span.members?.find((m) => m.key === key)?.value;
}

class Scanner {
  constructor(
    private readonly text: string,
    private pos: number,
  ) {}

  skipWs(): void {
    while (this.pos < this.text.length && " \t\n\r".includes(this.text[this.pos] as string)) this.pos++;
  }

  private peek(): string {
    if (this.pos >= this.text.length) throw INCOMPLETE;
    return this.text[this.pos] as string;
  }

  value(depth: number): JsonSpan {
    if (depth > MAX_DEPTH) throw INVALID;
    const c = this.peek();
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"') {
      const start = this.pos;
      this.string();
      return { start, end: this.pos };
    }
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    for (const word of ["true", "false", "null"]) {
      if (c !== word[0]) continue;
      const start = this.pos;
      for (const ch of word) {
        if (this.peek() !== ch) throw INVALID;
        this.pos++;
      }
      return { start, end: this.pos };
    }
    throw INVALID;
  }

  private object(depth: number): JsonSpan {
    const start = this.pos++;
    const members: JsonMember[] = [];
    this.skipWs();
    if (this.peek() === "}") {
      this.pos++;
      return this.container(start, depth, { members });
    }
    for (;;) {
      this.skipWs();
      if (this.peek() !== '"') throw INVALID;
      const keyStart = this.pos;
      this.string();
      const key = JSON.parse(this.text.slice(keyStart, this.pos)) as string;
      this.skipWs();
      if (this.peek() !== ":") throw INVALID;
      this.pos++;
      this.skipWs();
      const value = this.value(depth + 1);
      if (depth < RECORD_DEPTH) members.push({ key, value });
      this.skipWs();
      const next = this.peek();
      this.pos++;
      if (next === "}") return this.container(start, depth, { members });
      if (next !== ",") throw INVALID;
    }
  }

  private array(depth: number): JsonSpan {
    const start = this.pos++;
    const items: JsonSpan[] = [];
    this.skipWs();
    if (this.peek() === "]") {
      this.pos++;
      return this.container(start, depth, { items });
    }
    for (;;) {
      this.skipWs();
      const item = this.value(depth + 1);
      if (depth < RECORD_DEPTH) items.push(item);
      this.skipWs();
      const next = this.peek();
      this.pos++;
      if (next === "]") return this.container(start, depth, { items });
      if (next !== ",") throw INVALID;
    }
  }

  private container(start: number, depth: number, parts: Pick<JsonSpan, "members" | "items">): JsonSpan {
    return depth < RECORD_DEPTH ? { start, end: this.pos, ...parts } : { start, end: this.pos };
  }

  private string(): void {
    this.pos++; // opening quote
    for (;;) {
      const c = this.peek();
      this.pos++;
      if (c === '"') return;
      if (c < " ") throw INVALID;
      if (c !== "\\") continue;
      const e = this.peek();
      this.pos++;
      if (e === "u") {
        for (let i = 0; i < 4; i++) {
          if (!/[0-9a-fA-F]/.test(this.peek())) throw INVALID;
          this.pos++;
        }
      } else if (!'"\\/bfnrt'.includes(e)) throw INVALID;
    }
  }

  private number(): JsonSpan {
    const start = this.pos;
    if (this.peek() === "-") this.pos++;
    if (this.peek() === "0") this.pos++;
    else this.digits();
    if (this.more() && this.text[this.pos] === ".") {
      this.pos++;
      this.digits();
    }
    if (this.more() && (this.text[this.pos] === "e" || this.text[this.pos] === "E")) {
      this.pos++;
      if (this.peek() === "+" || this.peek() === "-") this.pos++;
      this.digits();
    }
    // A number that runs to the end of the text may still grow.
    if (!this.more()) throw INCOMPLETE;
    return { start, end: this.pos };
  }

  private digits(): void {
    if (!/[0-9]/.test(this.peek())) throw INVALID;
    while (this.more() && /[0-9]/.test(this.text[this.pos] as string)) this.pos++;
  }

  private more(): boolean {
    return this.pos < this.text.length;
  }
}
