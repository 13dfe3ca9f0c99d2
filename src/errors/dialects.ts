/**
 * Every dialect's error shape, in one place: the same LmxError (code, status, fault) answered as OpenAI,
 * Anthropic or Ollama clients parse it. Statuses come from ERROR_CODES; only the body differs (and Anthropic's
 * own name for an overloaded server).
 */
import { ERROR_CODES, toHttp, type LmxError } from "./codes.js";

export type Dialect = "openai" | "anthropic" | "ollama";

/** Which dialect a request speaks, from its path: Anthropic's Messages API and Ollama's /api/* have their own. */
export function dialectOf(url: string): Dialect {
  const path = url.split("?")[0] ?? "";
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  if (path.startsWith("/api/")) return "ollama";
  return "openai";
}

/** Anthropic's error types (https://docs.anthropic.com/en/api/errors) by HTTP status. */
function anthropicType(status: number): string {
  switch (status) {
    case 400:
    case 405:
    case 408:
    case 409:
    case 415:
    case 422:
    case 431:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 507:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

export interface DialectError {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export function errorFor(dialect: Dialect, error: LmxError): DialectError {
  const http = toHttp(error);
  switch (dialect) {
    case "openai":
      return http;
    case "anthropic":
      return {
        status: http.status,
        headers: http.headers,
        // our code travels too: clients that only read `type` lose nothing, operators can grep the code
        body: { type: "error", error: { type: anthropicType(http.status), message: error.message, code: error.code, param: error.param } },
      };
    case "ollama":
      return { status: http.status, headers: http.headers, body: { error: error.message, code: error.code } };
  }
}

/** The error as one streamed event/line of the dialect, for failures after a 200 went out. */
export function streamedErrorFor(dialect: Dialect, error: LmxError): string {
  switch (dialect) {
    case "openai":
      return `data: ${JSON.stringify(toHttp(error).body)}\n\n`;
    case "anthropic":
      return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: anthropicType(ERROR_CODES[error.code].status), message: error.message } })}\n\n`;
    case "ollama":
      return `${JSON.stringify({ error: error.message })}\n`;
  }
}
