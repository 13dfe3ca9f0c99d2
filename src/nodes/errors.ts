/**
 * How a node failed, in a few words an operator can act on, and the one error a client gets for it
 * (`node_unavailable`, 503 with Retry-After). Connection errors are classified from their system or undici code.
 */
import { fromOpenAiBody, isErrorCode, LmxError, type ErrorCode } from "../errors/codes.js";

export type NodeFailureKind = "refused" | "timeout" | "unreachable" | "reset" | "auth" | "http" | "bad_answer";

export interface NodeProblem {
  kind: NodeFailureKind;
  message: string;
  /** Date.now() when it was seen. */
  at: number;
}

function codeOf(error: unknown): string {
  let current: unknown = error;
  // undici wraps the socket's error; the system code is on the innermost cause
  for (let depth = 0; depth < 4 && current && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET") return code;
    current = (current as { cause?: unknown }).cause;
  }
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === "string" ? name : "";
}

/** A failure to reach a node or read its answer, as a kind and a message. */
export function classifyConnectionError(error: unknown): { kind: NodeFailureKind; message: string } {
  const code = codeOf(error);
  const detail = (error as Error)?.message ?? String(error);
  switch (code) {
    case "ECONNREFUSED":
      return { kind: "refused", message: "connection refused (nothing listens at its address)" };
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "ETIMEDOUT":
    case "TimeoutError":
      return { kind: "timeout", message: `no answer in time (${detail})` };
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return { kind: "unreachable", message: `cannot reach its host (${code})` };
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_CLOSED":
      return { kind: "reset", message: `the connection broke (${code})` };
    default:
      return { kind: "reset", message: `the connection failed: ${detail}` };
  }
}

export function nodeUnavailable(node: string, problem: { kind: NodeFailureKind; message: string }, retryAfterSec: number): LmxError {
  return new LmxError("node_unavailable", `node '${node}' is unavailable: ${problem.message}`, {
    retryAfterSec,
    details: { node, kind: problem.kind },
  });
}

/** Statuses of a server that speaks OpenAI's API but not our codes. */
const BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: "invalid_request",
  404: "model_not_found",
  408: "request_timeout",
  413: "request_too_large",
  422: "invalid_request",
  429: "queue_full",
};

/**
 * A node's error answer as our error. An LMX node's body carries our code, kept as it is (its Retry-After is
 * added by the relay); another server's status is mapped. A refused key (401/403) or a server error without a
 * code of ours is the node's problem, not the client's: node_unavailable, so the caller fails over.
 */
export function nodeAnswerError(node: string, status: number, json: unknown, text: string, retryAfterSec: number): LmxError {
  // before our own codes: an LMX node's invalid_api_key is about our key for it, not the client's
  if (status === 401 || status === 403) {
    return nodeUnavailable(node, { kind: "auth", message: `it refused our key (HTTP ${status}); check api_key for this node` }, retryAfterSec);
  }
  const code = (json as { error?: { code?: unknown } } | null)?.error?.code;
  if (isErrorCode(code)) return fromOpenAiBody(json, "internal_error", text);
  const message = (json as { error?: { message?: unknown } } | null)?.error?.message;
  const said = typeof message === "string" ? message : text.slice(0, 300);
  const mapped = BY_STATUS[status];
  if (mapped) return new LmxError(mapped, `node '${node}' answered HTTP ${status}: ${said}`, { param: status === 404 ? "model" : null });
  return nodeUnavailable(node, { kind: "http", message: `it answered HTTP ${status}: ${said}` }, retryAfterSec);
}
