/**
 * `<tool_call>{…}</tool_call>` calls: the hermes family (Hermes 2/3, Qwen2.5, Qwen3) writes
 * `<tool_call>\n{"name": "NAME", "arguments": {…}}\n</tool_call>`, ours (generic) the same without the newlines.
 * One parser reads both, tolerant of whitespace, of `parameters` for `arguments` and of a missing closing tag at
 * the very end (generation may stop on it).
 */
import type { OutputParser } from "../types.js";
import { BufferedParser, readCall, type ParserOptions } from "./emitter.js";
import { scanJsonValue } from "./json-span.js";

export const TOOL_CALL_OPEN = "<tool_call>";
export const TOOL_CALL_CLOSE = "</tool_call>";

export function taggedParser(options: ParserOptions): OutputParser {
  return new TaggedParser(options);
}

class TaggedParser extends BufferedParser {
  private inCall = false;
  /** How much of the call's text the last incomplete scan saw: only a `}` (or a tag's `>`) can decide it. */
  private scannedTo = 0;

  protected drain(final: boolean): void {
    for (;;) {
      if (!this.inCall) {
        if (!this.contentUntil(TOOL_CALL_OPEN, final)) return;
        this.inCall = true;
        this.scannedTo = 0;
      }
      const end = this.callEnd(final);
      if (end === null) return;
      this.inCall = false;
    }
  }

  /** Decides the call at the start of the buffer: consumes it and returns its end, or null to wait for more. */
  private callEnd(final: boolean): number | null {
    const text = this.buffer;
    if (!final && this.scannedTo > 0 && !/[}>]/.test(text.slice(this.scannedTo))) return null;
    const scan = scanJsonValue(text, TOOL_CALL_OPEN.length);
    if (scan.kind === "incomplete") {
      if (!final) {
        this.scannedTo = text.length;
        return null;
      }
      return this.fallBack(text.length);
    }
    if (scan.kind === "invalid") {
      this.scannedTo = text.length;
      return this.fallBackToClose(final);
    }
    let after = scan.value.end;
    while (after < text.length && /\s/.test(text[after] as string)) after++;
    let end: number;
    if (text.startsWith(TOOL_CALL_CLOSE, after)) end = after + TOOL_CALL_CLOSE.length;
    else if (TOOL_CALL_CLOSE.startsWith(text.slice(after))) {
      // Only whitespace or part of the closing tag so far.
      if (!final) {
        this.scannedTo = text.length;
        return null;
      }
      end = text.length;
    } else return this.fallBackToClose(final);
    const call = text[scan.value.start] === "{" ? readCall(text, scan.value, this.out.tools, ["arguments", "parameters"]) : null;
    if (call === null) return this.fallBack(end);
    this.out.call(call);
    this.buffer = text.slice(end);
    return end;
  }

  /** Broken markup runs to its closing tag (or the end of the output). */
  private fallBackToClose(final: boolean): number | null {
    const close = this.buffer.indexOf(TOOL_CALL_CLOSE);
    if (close >= 0) return this.fallBack(close + TOOL_CALL_CLOSE.length);
    return final ? this.fallBack(this.buffer.length) : null;
  }

  private fallBack(end: number): number {
    this.out.fallback(this.buffer.slice(0, end));
    this.buffer = this.buffer.slice(end);
    return end;
  }
}
