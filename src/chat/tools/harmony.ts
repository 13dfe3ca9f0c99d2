/**
 * gpt-oss's harmony format. Generation starts right after the prompt's `<|start|>assistant`; each message is a
 * header (`<|channel|>NAME`, optionally ` to=RECIPIENT` on either side of it and a ` <|constrain|>json`) then
 * `<|message|>` and a body ending at `<|end|>` (then `<|start|>assistant` again), `<|call|>` or `<|return|>`.
 * `analysis` bodies are reasoning, `final` and recipient-less `commentary` bodies are content, a body addressed
 * `to=functions.NAME` is a call whose JSON arguments are the body.
 */
import type { OutputParser } from "../types.js";
import { BufferedParser, argumentsText, findMarker, heldSuffix, TrimmedStream, type ParserOptions } from "./emitter.js";
import { scanJsonValue } from "./json-span.js";

export const H_START = "<|start|>";
export const H_CHANNEL = "<|channel|>";
export const H_MESSAGE = "<|message|>";
export const H_END = "<|end|>";
export const H_CALL = "<|call|>";
export const H_RETURN = "<|return|>";
export const H_CONSTRAIN = "<|constrain|>";

/** What ends a body: consumed ones, and ones that begin the next header (kept for it). */
const CONSUMED_ENDS = [H_END, H_CALL, H_RETURN];
const BODY_ENDS = [...CONSUMED_ENDS, H_START, H_CHANNEL];
const HEADER_STARTS = [H_CHANNEL, H_START, " to=", "to="];
/** A header longer than this without `<|message|>` is not a header. */
const MAX_HEADER = 512;

type Body = { kind: "reasoning" } | { kind: "content" } | { kind: "call"; name: string; header: string };

export function harmonyParser(options: ParserOptions): OutputParser {
  return new HarmonyParser(options);
}

class HarmonyParser extends BufferedParser {
  private readonly reasoning = new TrimmedStream();
  private body: Body | null = null;

  protected drain(final: boolean): void {
    for (;;) {
      if (this.body === null) {
        if (!this.header(final)) return;
        continue;
      }
      const found = findMarker(this.buffer, BODY_ENDS);
      if (found === null) {
        if (this.body.kind === "call") {
          if (final) {
            this.endCall(this.buffer);
            this.buffer = "";
            this.body = null;
          }
          return;
        }
        const end = this.buffer.length - (final ? 0 : heldSuffix(this.buffer, BODY_ENDS));
        this.bodyText(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end);
        return;
      }
      const text = this.buffer.slice(0, found.index);
      if (this.body.kind === "call") this.endCall(text);
      else {
        this.bodyText(text);
        this.reasoning.end();
      }
      const consumed = CONSUMED_ENDS.includes(found.marker) ? found.marker.length : 0;
      this.buffer = this.buffer.slice(found.index + consumed);
      this.body = null;
    }
  }

  /** Reads a header at the start of the buffer; false to wait for more text. */
  private header(final: boolean): boolean {
    const text = this.buffer;
    if (text === "") return false;
    const looksLikeHeader = HEADER_STARTS.some((start) => text.startsWith(start) || (!final && start.startsWith(text)));
    if (!looksLikeHeader) {
      // Plain text where a header belongs: the model skipped the syntax; it is the answer.
      this.body = { kind: "content" };
      return true;
    }
    const message = text.indexOf(H_MESSAGE);
    if (message < 0) {
      if (!final && text.length <= MAX_HEADER) return false;
      // Never became a header: content (a broken call header falls back).
      if (/\bto=/.test(text)) this.out.fallback(text);
      else this.out.content(text);
      this.buffer = "";
      return true;
    }
    const header = text.slice(0, message);
    this.buffer = text.slice(message + H_MESSAGE.length);
    this.body = bodyOf(header);
    return true;
  }

  private bodyText(text: string): void {
    if (this.body?.kind === "reasoning") this.out.reasoning(this.reasoning.push(text));
    else this.out.content(text);
  }

  private endCall(bodyText: string): void {
    const body = this.body as Extract<Body, { kind: "call" }>;
    const trimmed = bodyText.trim();
    const scan = scanJsonValue(trimmed, 0);
    const args = scan.kind === "complete" && scan.value.end === trimmed.length && trimmed.startsWith("{") ? argumentsText(trimmed) : null;
    if (args !== null && this.out.tools.some((t) => t.name === body.name)) this.out.call({ name: body.name, arguments: args });
    else this.out.fallback(body.header + H_MESSAGE + bodyText);
  }
}

function bodyOf(header: string): Body {
  const channel = /<\|channel\|>\s*([A-Za-z0-9_-]+)/.exec(header)?.[1];
  const recipient = /\bto=([^\s<]+)/.exec(header)?.[1];
  if (recipient !== undefined && recipient !== "assistant") {
    const name = recipient.startsWith("functions.") ? recipient.slice("functions.".length) : recipient;
    return { kind: "call", name, header };
  }
  return channel === "analysis" ? { kind: "reasoning" } : { kind: "content" };
}
