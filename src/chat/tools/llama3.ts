/**
 * Llama 3.1/3.2 JSON tool calls: the whole answer is `{"name": "NAME", "parameters": {…}}` (`arguments` is
 * accepted too), optionally after `<|python_tag|>`. Parallel calls — which Meta's format leaves open — are ours:
 * objects one per line (the grammar writes `\n` between them; the parser also takes `;` and any whitespace).
 * A call is recognised only at the start of the answer or right after `<|python_tag|>`: mid-answer JSON is
 * content.
 */
import type { OutputParser } from "../types.js";
import { BufferedParser, readCall, type ParserOptions } from "./emitter.js";
import { scanJsonValue } from "./json-span.js";

export const PYTHON_TAG = "<|python_tag|>";
export const LLAMA3_CALL_SEPARATOR = "\n";

/** The beginning of a call object: `{` then `"name"` then `:`, with any whitespace. */
const CALL_START = /^\s*\{\s*"name"\s*:/;
/** Text that can still grow into CALL_START. */
const CALL_START_PREFIX = /^\s*(?:\{\s*(?:"(?:n(?:a(?:m(?:e(?:"\s*)?)?)?)?)?)?)?$/;

export function llama3Parser(options: ParserOptions): OutputParser {
  return new Llama3Parser(options);
}

class Llama3Parser extends BufferedParser {
  /** `start`: a call may begin here; `calls`: between calls; `content`: plain text (until a python tag). */
  private state: "start" | "calls" | "content" = "start";
  private scannedTo = 0;

  protected drain(final: boolean): void {
    for (;;) {
      if (this.state === "content") {
        if (!this.contentUntil(PYTHON_TAG, final)) return;
        this.buffer = this.buffer.slice(PYTHON_TAG.length);
        this.state = "calls";
        continue;
      }
      // Between calls, separators and python tags are not content; before the first, whitespace is.
      const lead = (this.state === "calls" ? /^[\s;]*/ : /^\s*/).exec(this.buffer)?.[0].length ?? 0;
      if (this.state === "calls" && this.buffer.startsWith(PYTHON_TAG, lead)) {
        this.buffer = this.buffer.slice(lead + PYTHON_TAG.length);
        continue;
      }
      const rest = this.buffer.slice(lead);
      const undecided = rest === "" || CALL_START_PREFIX.test(rest) || (this.state === "calls" && PYTHON_TAG.startsWith(rest));
      if (undecided && !final) return;
      if (this.state === "start") this.out.content(this.buffer.slice(0, lead));
      this.buffer = rest;
      if (rest === "") return;
      if (!CALL_START.test(rest)) {
        this.state = "content";
        continue;
      }
      if (!this.call(final)) return;
      this.state = "calls";
    }
  }

  /** The call object at the start of the buffer: consumed (as a call or as fallen-back content), or false to wait. */
  private call(final: boolean): boolean {
    const text = this.buffer;
    if (!final && this.scannedTo > 0 && text.indexOf("}", this.scannedTo) < 0) return false;
    const scan = scanJsonValue(text, 0);
    if (scan.kind === "incomplete" && !final) {
      this.scannedTo = text.length;
      return false;
    }
    this.scannedTo = 0;
    if (scan.kind !== "complete") {
      // Broken JSON: there is no telling where it ends, so the rest of the answer is content.
      this.out.fallback(text);
      this.buffer = "";
      return true;
    }
    const end = scan.value.end;
    const call = readCall(text, scan.value, this.out.tools, ["parameters", "arguments"]);
    if (call === null) this.out.fallback(text.slice(0, end));
    else this.out.call(call);
    this.buffer = text.slice(end);
    return true;
  }
}
