/**
 * Whose fault an error is. Policy reads this column instead of keeping its own lists: only a backend's fault
 * falls through to the next backend and counts toward quarantine; a bad model file counts toward quarantine but
 * no other backend will do better; client, resource and server faults say nothing about the model or backend.
 */
export type ErrorFault = "client" | "model_file" | "backend" | "resource" | "server";

export interface ErrorSpec {
  status: number;
  /** OpenAI's error `type`. */
  type: string;
  fault: ErrorFault;
  /** Whether the same request may succeed later unchanged (sent as Retry-After where the error carries one). */
  retryable: boolean;
}

/**
 * Every error the server can answer with, defined once: its HTTP status, OpenAI error `type`, whose fault it is
 * and whether a retry can help. Routes and supervisors throw `LmxError`s by code; `toHttp` is the only place
 * statuses are chosen.
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  invalid_json: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  invalid_value: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  unknown_parameter: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  unsupported_parameter: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  context_length_exceeded: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  model_not_embedding: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  model_is_embedding: { status: 400, type: "invalid_request_error", fault: "client", retryable: false },
  unauthorized: { status: 401, type: "authentication_error", fault: "client", retryable: false },
  invalid_api_key: { status: 401, type: "invalid_request_error", fault: "client", retryable: false },
  model_not_found: { status: 404, type: "invalid_request_error", fault: "client", retryable: false },
  not_found: { status: 404, type: "invalid_request_error", fault: "client", retryable: false },
  download_not_found: { status: 404, type: "invalid_request_error", fault: "client", retryable: false },
  download_unauthorized: { status: 403, type: "permission_error", fault: "client", retryable: false },
  forbidden_host: { status: 403, type: "permission_error", fault: "client", retryable: false },
  forbidden_origin: { status: 403, type: "permission_error", fault: "client", retryable: false },
  download_in_progress: { status: 409, type: "invalid_request_error", fault: "client", retryable: true },
  benchmark_in_progress: { status: 409, type: "invalid_request_error", fault: "client", retryable: true },
  autotune_in_progress: { status: 409, type: "invalid_request_error", fault: "client", retryable: true },
  download_checksum_mismatch: { status: 502, type: "server_error", fault: "server", retryable: true },
  download_failed: { status: 502, type: "server_error", fault: "server", retryable: true },
  method_not_allowed: { status: 405, type: "invalid_request_error", fault: "client", retryable: false },
  request_timeout: { status: 408, type: "invalid_request_error", fault: "client", retryable: true },
  model_not_loaded: { status: 409, type: "invalid_request_error", fault: "client", retryable: false },
  download_required: { status: 409, type: "invalid_request_error", fault: "client", retryable: false },
  request_too_large: { status: 413, type: "invalid_request_error", fault: "client", retryable: false },
  unsupported_media_type: { status: 415, type: "invalid_request_error", fault: "client", retryable: false },
  request_header_too_large: { status: 431, type: "invalid_request_error", fault: "client", retryable: false },
  queue_full: { status: 429, type: "rate_limit_error", fault: "resource", retryable: true },
  model_file_invalid: { status: 422, type: "model_error", fault: "model_file", retryable: false },
  model_probe_failed: { status: 422, type: "model_error", fault: "backend", retryable: false },
  model_load_timeout: { status: 503, type: "model_error", fault: "backend", retryable: true },
  model_loader_crashed: { status: 503, type: "model_error", fault: "backend", retryable: true },
  model_crashed: { status: 503, type: "model_error", fault: "backend", retryable: true },
  model_quarantined: { status: 503, type: "model_error", fault: "backend", retryable: false },
  backend_unavailable: { status: 503, type: "server_error", fault: "backend", retryable: false },
  queue_timeout: { status: 503, type: "server_error", fault: "resource", retryable: true },
  server_shutting_down: { status: 503, type: "server_error", fault: "server", retryable: true },
  runner_busy: { status: 503, type: "server_error", fault: "resource", retryable: true },
  /** The remote node(s) serving this model are down or refused us (src/nodes/); local models are unaffected. */
  node_unavailable: { status: 503, type: "server_error", fault: "backend", retryable: true },
  /**
   * A llama.cpp RPC worker (rpc.workers) does not accept connections before a load, or went away under a loaded
   * model. Not the backend's or the file's fault: no fallthrough, no quarantine; it serves again once the worker is back.
   */
  rpc_worker_unavailable: { status: 503, type: "server_error", fault: "resource", retryable: true },
  insufficient_memory: { status: 507, type: "server_error", fault: "resource", retryable: true },
  insufficient_disk: { status: 507, type: "server_error", fault: "resource", retryable: false },
  skill_not_found: { status: 404, type: "invalid_request_error", fault: "client", retryable: false },
  /** A skill configuration refuses for this caller or place (not allowed in the server-side loop, read_file outside its roots). */
  skill_forbidden: { status: 403, type: "permission_error", fault: "client", retryable: false },
  /**
   * A skill's handler failed (a command exited non-zero or printed no JSON, a built-in threw). 502, not 500: the
   * gateway did its part and the tool it fronts failed, as a proxy's upstream would; 500 stays for our own bugs.
   */
  skill_failed: { status: 502, type: "server_error", fault: "server", retryable: false },
  skill_timeout: { status: 504, type: "server_error", fault: "server", retryable: true },
  mcp_server_unavailable: { status: 502, type: "server_error", fault: "server", retryable: true },
  /** No agent run has this id (never created, or dropped by agents.max_runs_kept). */
  agent_run_not_found: { status: 404, type: "invalid_request_error", fault: "client", retryable: false },
  /** The run already ended (completed, failed, cancelled, timed out): there is nothing to cancel. */
  agent_run_finished: { status: 409, type: "invalid_request_error", fault: "client", retryable: false },
  internal_error: { status: 500, type: "server_error", fault: "server", retryable: true },
} as const satisfies Record<string, ErrorSpec>;

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

  get fault(): ErrorFault {
    return ERROR_CODES[this.code].fault;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
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
export function fromOpenAiBody(body: unknown, fallbackCode: ErrorCode, fallbackMessage: string): LmxError {
  if (typeof body === "object" && body !== null && "error" in body) {
    const inner = (body as { error: unknown }).error;
    if (typeof inner === "object" && inner !== null) {
      const { code, message, param } = inner as { code?: unknown; message?: unknown; param?: unknown };
      if (isErrorCode(code) && typeof message === "string") {
        return new LmxError(code, message, { param: typeof param === "string" ? param : null });
      }
    }
  }
  return new LmxError(fallbackCode, fallbackMessage);
}
