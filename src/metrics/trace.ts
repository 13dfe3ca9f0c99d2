/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for one request: the gateway joins the caller's
 * trace when it sent a valid `traceparent`, starts one otherwise, and is itself one span of it. That span's
 * header goes to the runner (as its parent) and back to the client, so a trace id found in a client's logs
 * leads to the gateway's log lines and on to the runner.
 */
import { randomBytes } from "node:crypto";

export interface TraceContext {
  traceId: string;
  /** The gateway's own span for this request. */
  spanId: string;
  /** The caller's span, when the request carried a valid traceparent. */
  parentSpanId: string | null;
  flags: string;
  /** `00-<trace id>-<gateway span id>-<flags>`: sent to the runner and returned to the client. */
  traceparent: string;
  /** Vendor state passed through unchanged when the caller's traceparent was valid (the spec forbids it otherwise). */
  tracestate: string | null;
}

// version-traceid-parentid-flags; later versions may append fields after another dash, version 00 may not
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;
/** The spec caps tracestate at 32 members; 512 characters covers what vendors send and bounds what we forward. */
const MAX_TRACESTATE = 512;

export interface ParsedTraceparent {
  traceId: string;
  parentSpanId: string;
  flags: string;
}

/** The caller's trace, or null for anything the spec says to ignore (then a new trace starts). */
export function parseTraceparent(header: string | string[] | undefined): ParsedTraceparent | null {
  // a repeated header is ambiguous: the spec lets us discard it
  if (typeof header !== "string") return null;
  const match = TRACEPARENT.exec(header.trim());
  if (!match) return null;
  const [, version, traceId, parentSpanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff") return null;
  if (version === "00" && rest !== undefined) return null;
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(parentSpanId)) return null;
  return { traceId, parentSpanId, flags };
}

function nonZeroHex(bytes: number): string {
  for (;;) {
    const hex = randomBytes(bytes).toString("hex");
    if (!ALL_ZERO.test(hex)) return hex;
  }
}

export function traceContextFor(headers: Record<string, string | string[] | undefined>): TraceContext {
  const incoming = parseTraceparent(headers["traceparent"]);
  const spanId = nonZeroHex(8);
  // Only the version-00 sampled bit is defined; other bits are not ours to pass on. A new trace is not
  // sampled: the gateway records no spans, it only correlates.
  const flags = incoming ? (Number.parseInt(incoming.flags, 16) & 1 ? "01" : "00") : "00";
  const traceId = incoming?.traceId ?? nonZeroHex(16);
  const state = headers["tracestate"];
  return {
    traceId,
    spanId,
    parentSpanId: incoming?.parentSpanId ?? null,
    flags,
    traceparent: `00-${traceId}-${spanId}-${flags}`,
    tracestate: incoming && typeof state === "string" && state.length > 0 && state.length <= MAX_TRACESTATE ? state : null,
  };
}
