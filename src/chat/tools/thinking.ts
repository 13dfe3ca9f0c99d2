/**
 * `<think>…</think>` blocks, shared by the families whose templates think that way (Qwen3, DeepSeek-R1 and
 * kin): the block's text is reasoning, what follows goes to the family's own parser. Only a block at the very
 * start counts (after whitespace); the prompt may already have opened it (`open`).
 */
import type { GbnfBuilder } from "../json-schema/gbnf.js";
import type { OutputEvent, OutputParser, ToolOutcome } from "../types.js";
import { heldSuffix, TrimmedStream } from "./emitter.js";

export const THINK_OPEN = "<think>";
export const THINK_CLOSE = "</think>";

export interface GrammarOptions {
  /**
   * The model may write a thinking block before the answer; `"open"`: the prompt ends inside an opened block,
   * so the output must close it first.
   */
  thinking: boolean | "open";
  /** Bound on the block's length in characters, so that any weights finish (default 1024). */
  maxThinkingChars?: number | undefined;
}

export const DEFAULT_MAX_THINKING_CHARS = 1024;

/**
 * The grammar of an optional bounded block that ends the way the parser reads it: `<think>\n` (unless the prompt
 * opened it), at most N characters among which `</` and `<<` cannot occur — so `</think>` cannot appear early —
 * then `</think>\n\n`. Returns "" without thinking.
 */
export function thinkingGrammar(b: GbnfBuilder, opts: GrammarOptions): string {
  if (opts.thinking === false) return "";
  const item = b.rule("think-char", `[^<] | "<" [^/<]`);
  const body = b.rule("think-body", `${item}{0,${boundedCount(opts.maxThinkingChars)}}`);
  const close = b.literal(`${THINK_CLOSE}\n\n`);
  if (opts.thinking === "open") return `${body} ${close}`;
  return `( ${b.literal(`${THINK_OPEN}\n`)} ${body} ${close} )?`;
}

export function boundedCount(n: number | undefined): number {
  const value = n ?? DEFAULT_MAX_THINKING_CHARS;
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`maxThinkingChars must be a non-negative integer, got ${value}`);
  return value;
}

/** Wraps a family's parser: a leading think block becomes reasoning, everything after it goes to `inner`. */
export function withThinking(inner: OutputParser, open: boolean): OutputParser {
  return new ThinkingParser(inner, open);
}

class ThinkingParser implements OutputParser {
  private state: "start" | "in" | "after" | "out";
  private buffer = "";
  private readonly reasoning = new TrimmedStream();

  constructor(
    private readonly inner: OutputParser,
    open: boolean,
  ) {
    this.state = open ? "in" : "start";
  }

  push(text: string): OutputEvent[] {
    if (this.state === "out") return this.inner.push(text);
    this.buffer += text;
    const events: OutputEvent[] = [];
    for (;;) {
      if (this.state === "start") {
        const lead = this.buffer.trimStart();
        if (lead.startsWith(THINK_OPEN)) {
          this.buffer = lead.slice(THINK_OPEN.length);
          this.state = "in";
          continue;
        }
        if (THINK_OPEN.startsWith(lead)) return events; // empty or a partial `<think>`: undecided
        this.state = "out";
      } else if (this.state === "in") {
        const close = this.buffer.indexOf(THINK_CLOSE);
        const end = close >= 0 ? close : this.buffer.length - heldSuffix(this.buffer, [THINK_CLOSE]);
        this.addReasoning(events, this.buffer.slice(0, end));
        if (close < 0) {
          this.buffer = this.buffer.slice(end);
          return events;
        }
        this.reasoning.end();
        this.buffer = this.buffer.slice(close + THINK_CLOSE.length);
        this.state = "after";
        continue;
      } else if (this.state === "after") {
        // The separator after the block is not content.
        this.buffer = this.buffer.trimStart();
        if (this.buffer === "") return events;
        this.state = "out";
      }
      const rest = this.buffer;
      this.buffer = "";
      events.push(...this.inner.push(rest));
      return events;
    }
  }

  finish(): { events: OutputEvent[]; outcome: ToolOutcome } {
    const events: OutputEvent[] = [];
    if (this.state === "in") this.addReasoning(events, this.buffer);
    else if (this.state === "start") events.push(...this.inner.push(this.buffer));
    this.buffer = "";
    const done = this.inner.finish();
    return { events: [...events, ...done.events], outcome: done.outcome };
  }

  private addReasoning(events: OutputEvent[], text: string): void {
    const out = this.reasoning.push(text);
    if (out !== "") events.push({ type: "reasoning", text: out });
  }
}
