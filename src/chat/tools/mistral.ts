/**
 * Mistral tool calls. The grammar writes the v3 form `[TOOL_CALLS] [{"name": "NAME", "arguments": {…}}, …]`;
 * the parser also reads it without the space, with an `"id"` member in each call, and the newer (v11+) form
 * `[TOOL_CALLS]NAME[ARGS]{…}` (optionally `[CALL_ID]id` before `[ARGS]`), one marker per call.
 */
import type { OutputParser } from "../types.js";
import { BufferedParser, argumentsText, readCall, type ParsedCall, type ParserOptions } from "./emitter.js";
import { scanJsonValue } from "./json-span.js";

export const TOOL_CALLS = "[TOOL_CALLS]";
export const ARGS = "[ARGS]";
export const CALL_ID = "[CALL_ID]";

/** `NAME[ARGS]` or `NAME[CALL_ID]id[ARGS]` right after the marker. */
const NAMED_HEAD = /^([A-Za-z0-9_.-]+)(?:\[CALL_ID\][A-Za-z0-9_-]*)?\[ARGS\]/;
/** Whether `text` may still grow into NAMED_HEAD. */
function namedHeadPrefix(text: string): boolean {
  const name = /^[A-Za-z0-9_.-]*/.exec(text)?.[0] ?? "";
  let rest = text.slice(name.length);
  if (rest === "") return true;
  if (name === "") return false;
  if (ARGS.startsWith(rest)) return true;
  if (CALL_ID.startsWith(rest)) return true;
  if (!rest.startsWith(CALL_ID)) return false;
  rest = rest.slice(CALL_ID.length);
  rest = rest.slice((/^[A-Za-z0-9_-]*/.exec(rest)?.[0] ?? "").length);
  return ARGS.startsWith(rest);
}

export function mistralParser(options: ParserOptions): OutputParser {
  return new MistralParser(options);
}

class MistralParser extends BufferedParser {
  private inCalls = false;
  private scannedTo = 0;

  protected drain(final: boolean): void {
    for (;;) {
      if (!this.inCalls) {
        if (!this.contentUntil(TOOL_CALLS, final)) return;
        this.inCalls = true;
        this.scannedTo = 0;
      }
      if (!this.calls(final)) return;
      this.inCalls = false;
    }
  }

  /** The calls after the marker at the start of the buffer: consumed, or false to wait for more text. */
  private calls(final: boolean): boolean {
    const text = this.buffer;
    let at = TOOL_CALLS.length;
    while (at < text.length && /\s/.test(text[at] as string)) at++;
    if (at === text.length) return final ? this.fallBack(text.length) : false;
    if (text[at] === "[") return this.arrayForm(at, final);
    const head = NAMED_HEAD.exec(text.slice(at));
    if (head === null) {
      if (!final && namedHeadPrefix(text.slice(at))) return false;
      return this.fallBack(text.length);
    }
    const argsAt = at + head[0].length;
    const scan = this.scan(argsAt, final);
    if (scan === null) return false;
    if (scan.kind !== "complete") return this.fallBack(text.length);
    const raw = text.slice(scan.value.start, scan.value.end);
    const name = head[1] as string;
    const args = text[scan.value.start] === "{" ? argumentsText(raw) : null;
    if (args === null || !this.out.tools.some((t) => t.name === name)) return this.fallBack(scan.value.end);
    this.emit([{ name, arguments: args }], scan.value.end);
    return true;
  }

  private arrayForm(at: number, final: boolean): boolean {
    const scan = this.scan(at, final);
    if (scan === null) return false;
    if (scan.kind !== "complete") return this.fallBack(this.buffer.length);
    const calls: ParsedCall[] = [];
    for (const item of scan.value.items ?? []) {
      const call = this.buffer[item.start] === "{" ? readCall(this.buffer, item, this.out.tools, ["arguments", "parameters"]) : null;
      if (call === null) return this.fallBack(scan.value.end);
      calls.push(call);
    }
    if (calls.length === 0) return this.fallBack(scan.value.end);
    this.emit(calls, scan.value.end);
    return true;
  }

  /** Scans the JSON value at `at`; null while it is incomplete and more may come. */
  private scan(at: number, final: boolean): ReturnType<typeof scanJsonValue> | null {
    if (!final && this.scannedTo > 0 && !/[}\]]/.test(this.buffer.slice(this.scannedTo))) return null;
    const scan = scanJsonValue(this.buffer, at);
    if (scan.kind === "incomplete" && !final) {
      this.scannedTo = this.buffer.length;
      return null;
    }
    this.scannedTo = 0;
    return scan;
  }

  private emit(calls: ParsedCall[], end: number): void {
    for (const call of calls) this.out.call(call);
    this.buffer = this.buffer.slice(end);
  }

  /** Markup that did not parse, up to `end` (the rest of the answer when its extent is unknown), is content. */
  private fallBack(end: number): boolean {
    this.out.fallback(this.buffer.slice(0, end));
    this.buffer = this.buffer.slice(end);
    return true;
  }
}
