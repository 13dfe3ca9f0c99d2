/**
 * What every family's parser shares: turning decided text into events, validating a call against the tools,
 * and the whitespace policy that makes the events independent of how the text was split into chunks.
 */
import type { OutputEvent, OutputParser, ToolDefinition, ToolOutcome } from "../types.js";
import { memberOf, type JsonSpan } from "./json-span.js";

export interface ParserOptions {
  tools: readonly ToolDefinition[];
  /** The grammar forced a call (tool_choice required or named): a parsed call reports `forced`. */
  forced: boolean;
  newId: () => string;
  /**
   * The model may write a `<think>` block first; `"open"`: the prompt already opened it (it ends with `<think>`).
   * Families with their own reasoning syntax (harmony) ignore it.
   */
  thinking?: boolean | "open" | undefined;
}

/** A call that parsed: its tool name and the arguments object's JSON text as the model wrote it. */
export interface ParsedCall {
  name: string;
  arguments: string;
}

/** Length of the longest proper prefix of any marker that `text` ends with: text that may not be emitted yet. */
export function heldSuffix(text: string, markers: readonly string[]): number {
  let held = 0;
  for (const marker of markers) {
    for (let n = Math.min(marker.length - 1, text.length); n > held; n--) {
      if (text.endsWith(marker.slice(0, n))) {
        held = n;
        break;
      }
    }
  }
  return held;
}

/** The earliest occurrence of any marker at or after `from`. */
export function findMarker(text: string, markers: readonly string[], from = 0): { index: number; marker: string } | null {
  let best: { index: number; marker: string } | null = null;
  for (const marker of markers) {
    const index = text.indexOf(marker, from);
    if (index >= 0 && (best === null || index < best.index)) best = { index, marker };
  }
  return best;
}

/**
 * Reads a call object `{"name": …, <argsKey>: {…}}` out of a scanned span. The arguments may also be a string
 * holding a JSON object (some models quote them), and may be missing for a tool without parameters (`{}`).
 * Returns null when the name is not one of the tools or the arguments are not an object.
 */
export function readCall(text: string, span: JsonSpan, tools: readonly ToolDefinition[], argsKeys: readonly string[]): ParsedCall | null {
  const nameSpan = memberOf(span, "name");
  if (nameSpan === undefined || text[nameSpan.start] !== '"') return null;
  const name = JSON.parse(text.slice(nameSpan.start, nameSpan.end)) as string;
  if (!tools.some((t) => t.name === name)) return null;
  const args = argsKeys.map((key) => memberOf(span, key)).find((s) => s !== undefined);
  const parsedArgs = args === undefined ? "{}" : argumentsText(text.slice(args.start, args.end));
  return parsedArgs === null ? null : { name, arguments: parsedArgs };
}

/** The arguments JSON text when `raw` (a complete JSON value) is an object or a string holding one. */
export function argumentsText(raw: string): string | null {
  const value: unknown = JSON.parse(raw);
  if (isObject(value)) return raw;
  if (typeof value !== "string") return null;
  try {
    return isObject(JSON.parse(value)) ? value.trim() : null;
  } catch {
    return null;
  }
}

function isObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Collects events. Whitespace-only content is held until something decides it: text after it (emitted), a call
 * (dropped: the newlines between calls are not content) or the end (dropped when a call was made). The same
 * policy for any chunking keeps the events identical however the text arrived.
 */
export class Emitter {
  private events: OutputEvent[] = [];
  private pendingWs = "";
  private calls = 0;
  private fellBack = false;

  constructor(private readonly options: ParserOptions) {}

  content(text: string): void {
    if (text === "") return;
    const all = this.pendingWs + text;
    const body = all.trimEnd();
    this.pendingWs = all.slice(body.length);
    if (body !== "") this.push({ type: "content", text: body });
  }

  reasoning(text: string): void {
    if (text !== "") this.push({ type: "reasoning", text });
  }

  call(call: ParsedCall): void {
    this.pendingWs = "";
    const index = this.calls++;
    this.events.push({ type: "tool_call_start", index, id: this.options.newId(), name: call.name });
    this.events.push({ type: "tool_call_arguments", index, text: call.arguments });
  }

  /** Call markup that did not parse: it becomes content, and the outcome says so. */
  fallback(markup: string): void {
    this.fellBack = true;
    this.content(markup);
  }

  get tools(): readonly ToolDefinition[] {
    return this.options.tools;
  }

  take(): OutputEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  finish(): { events: OutputEvent[]; outcome: ToolOutcome } {
    if (this.calls === 0 && this.pendingWs !== "") this.push({ type: "content", text: this.pendingWs });
    this.pendingWs = "";
    const outcome: ToolOutcome = this.fellBack ? "fell_back" : this.calls === 0 ? "none" : this.options.forced ? "forced" : "parsed";
    return { events: this.take(), outcome };
  }

  private push(event: OutputEvent): void {
    const last = this.events.at(-1);
    if (last !== undefined && last.type === event.type && (event.type === "content" || event.type === "reasoning"))
      (last as { text: string }).text += (event as { text: string }).text;
    else this.events.push(event);
  }
}

/**
 * Reasoning text with its surrounding whitespace trimmed, streamed: leading whitespace is dropped, trailing
 * whitespace is held until more reasoning follows (the block's closing newline never shows).
 */
export class TrimmedStream {
  private started = false;
  private pendingWs = "";

  push(text: string): string {
    let all = this.pendingWs + text;
    if (!this.started) {
      all = all.trimStart();
      if (all === "") return "";
      this.started = true;
    }
    const body = all.trimEnd();
    this.pendingWs = all.slice(body.length);
    return body;
  }

  /** The block ended: held whitespace is dropped; the next block starts fresh. */
  end(): void {
    this.pendingWs = "";
    this.started = false;
  }
}

/**
 * What every family's parser shares: text arrives in pieces into a buffer, `drain` reads what it can decide, the
 * emitter hands out the events. Subclasses write only their family's reading of the buffer.
 */
export abstract class BufferedParser implements OutputParser {
  protected readonly out: Emitter;
  protected buffer = "";

  constructor(options: ParserOptions) {
    this.out = new Emitter(options);
  }

  push(text: string): OutputEvent[] {
    this.buffer += text;
    this.drain(false);
    return this.out.take();
  }

  finish(): { events: OutputEvent[]; outcome: ToolOutcome } {
    this.drain(true);
    return this.out.finish();
  }

  /** Reads what the buffer decides; `final` when no more text will come. */
  protected abstract drain(final: boolean): void;

  /**
   * Emits the content before `marker` and drops it from the buffer. True when the buffer now starts with the
   * marker; false when there is none yet (the tail that could begin one is held back unless `final`).
   */
  protected contentUntil(marker: string, final: boolean): boolean {
    const at = this.buffer.indexOf(marker);
    if (at < 0) {
      const end = this.buffer.length - (final ? 0 : heldSuffix(this.buffer, [marker]));
      this.out.content(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end);
      return false;
    }
    this.out.content(this.buffer.slice(0, at));
    this.buffer = this.buffer.slice(at);
    return true;
  }
}
