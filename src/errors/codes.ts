/**
 * Every error the server can answer with, defined once: its HTTP status and OpenAI error `type`.
 * Routes and supervisors throw `LmxError`s by code; `toHttp` is the only place statuses are chosen.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, type: "invalid_request_error" },
  invalid_json: { status: 400, type: "invalid_request_error" },
  invalid_value: { status: 400, type: "invalid_request_error" },
  unknown_parameter: { status: 400, type: "invalid_request_error" },
  unsupported_parameter: { status: 400, type: "invalid_request_error" },
  context_length_exceeded: { status: 400, type: "invalid_request_error" },
  model_not_embedding: { status: 400, type: "invalid_request_error" },
  model_is_embedding: { status: 400, type: "invalid_request_error" },
  unauthorized: { status: 401, type: "authentication_error" },
  invalid_api_key: { status: 401, type: "invalid_request_error" },
  model_not_found: { status: 404, type: "invalid_request_error" },
  not_found: { status: 404, type: "invalid_request_error" },
  download_not_found: { status: 404, type: "invalid_request_error" },
  download_unauthorized: { status: 403, type: "permission_error" },
  download_in_progress: { status: 409, type: "invalid_request_error" },
  benchmark_in_progress: { status: 409, type: "invalid_request_error" },
  download_checksum_mismatch: { status: 502, type: "server_error" },
  download_failed: { status: 502, type: "server_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  request_timeout: { status: 408, type: "invalid_request_error" },
  model_not_loaded: { status: 409, type: "invalid_request_error" },
  download_required: { status: 409, type: "invalid_request_error" },
  request_too_large: { status: 413, type: "invalid_request_error" },
  unsupported_media_type: { status: 415, type: "invalid_request_error" },
  request_header_too_large: { status: 431, type: "invalid_request_error" },
  queue_full: { status: 429, type: "rate_limit_error" },
  model_file_invalid: { status: 422, type: "model_error" },
  model_probe_failed: { status: 422, type: "model_error" },
  model_load_timeout: { status: 503, type: "model_error" },
  model_loader_crashed: { status: 503, type: "model_error" },
  model_crashed: { status: 503, type: "model_error" },
  model_quarantined: { status: 503, type: "model_error" },
  backend_unavailable: { status: 503, type: "server_error" },
  queue_timeout: { status: 503, type: "server_error" },
  server_shutting_down: { status: 503, type: "server_error" },
  runner_busy: { status: 503, type: "server_error" },
  insufficient_memory: { status: 507, type: "server_error" },
  insufficient_disk: { status: 507, type: "server_error" },
  internal_error: { status: 500, type: "server_error" },
} as const satisfies Record<string, { status: number; type: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CODES, value);
}

export interface LmxErrorOptions {
  param?: string | null;
  /** Seconds a client should wait before retrying; sent as `Retry-After`. */
  retryAfterSec?: number;
  /** Structured facts for logs and admin views (exit signal, stderr tail, estimates...). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class LmxError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryAfterSec: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: LmxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LmxError";
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterSec = options.retryAfterSec;
    this.details = options.details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export function toOpenAiBody(error: LmxError): OpenAiErrorBody {
  return {
    error: {
      message: error.message,
      type: ERROR_CODES[error.code].type,
      param: error.param,
      code: error.code,
    },
  };
}

/** The one mapping from an error value to what goes on the wire. */
export function toHttp(error: LmxError): { status: number; headers: Record<string, string>; body: OpenAiErrorBody } {
  const headers: Record<string, string> = {};
  if (error.retryAfterSec !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(error.retryAfterSec)));
  return { status: error.status, headers, body: toOpenAiBody(error) };
}

/**
 * Rebuilds an error that crossed a process boundary (runner → gateway) as an OpenAI body; `retryAfterSec` is
 * what the runner's Retry-After header said, which the body does not carry.
 */
export function fromOpenAiBody(body: unknown, fallbackCode: ErrorCode, fallbackMessage: string, retryAfterSec?: number): LmxError {
  if (typeof body === "object" && body !== null && "error" in body) {
    const inner = (body as { error: unknown }).error;
    if (typeof inner === "object" && inner !== null) {
      const { code, message, param } = inner as { code?: unknown; message?: unknown; param?: unknown };
      if (isErrorCode(code) && typeof message === "string") {
        return new LmxError(code, message, { param: typeof param === "string" ? param : null, ...(retryAfterSec !== undefined ? { retryAfterSec } : {}) });
      }
    }
  }
  return new LmxError(fallbackCode, fallbackMessage, retryAfterSec !== undefined ? { retryAfterSec } : {});
}
