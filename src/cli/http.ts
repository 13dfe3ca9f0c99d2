/**
 * The CLI's HTTP client: JSON calls and streams against the admin and OpenAI routes, with every failure turned
 * into a CliError that names what to fix — a refused connection, a 401 (which key, which setting), or the
 * server's own OpenAI-shaped error (code and message).
 */
import { Agent, fetch, type Response } from "undici";
import { CliError, EXIT } from "./exit.js";
import type { Target } from "./target.js";

/** Which key a route needs: admin routes the admin key, /v1 the API key, health probes none. */
export type Scope = "admin" | "v1" | "open";

export interface RequestOptions {
  body?: unknown;
  /** Whole-request limit; null = none (loads, probes and downloads may take minutes). Default 30 s. */
  timeoutMs?: number | null;
  signal?: AbortSignal;
  /** Statuses that are answers rather than errors (202 download_required, 503 from /readyz). */
  accept?: readonly number[];
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  headers: { get(name: string): string | null };
}

export interface ServerError {
  message: string;
  type: string | null;
  code: string | null;
}

/** The OpenAI error shape `{"error": {"message", "type", "code"}}`, or null when the body is something else. */
export function serverErrorOf(body: unknown): ServerError | null {
  if (typeof body !== "object" || body === null) return null;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return null;
  const { message, type, code } = error as Record<string, unknown>;
  if (typeof message !== "string") return null;
  return { message, type: typeof type === "string" ? type : null, code: typeof code === "string" ? code : null };
}

/** What to do next for the codes a CLI user meets most; the server's message already says what happened. */
const CODE_FIXES: Record<string, string> = {
  model_not_found: "`lmx models` lists the models the server has",
  insufficient_memory: "unload a model (`lmx unload ID`) or load with a smaller --ctx / --parallel",
  insufficient_disk: "free disk space, or lower downloads.min_free_bytes in the server's config",
  download_unauthorized: "set downloads.token (or HF_TOKEN) in the server's environment for gated or private repos",
  download_required: "`lmx pull ID` fetches the missing files (or `lmx load ID --auto-download`)",
  model_quarantined: "fix the cause, then POST /admin/models/unquarantine (see docs/reliability.md)",
  queue_full: "the server is busy: retry in a moment",
  server_shutting_down: "the server is stopping: retry once it is back",
  model_not_loaded: "`lmx load ID` first (the server runs with jit_load: false)",
  forbidden_host: "the server does not know the host name in --url: use its IP address, or add the name to the server's allowed_hosts",
  context_length_exceeded: "shorten the prompt or lower --max-tokens, or load the model with a larger --ctx",
};

export function authFix(scope: Scope, target: Target): string {
  if (scope === "admin") {
    const sent = target.from.adminKey ? `the admin key from ${target.from.adminKey} was refused: ` : "";
    return `${sent}set LMX_ADMIN_KEY or --admin-key to the server's admin_key`;
  }
  const sent = target.from.apiKey ? `the API key from ${target.from.apiKey} was refused: ` : "";
  return `${sent}set LMX_API_KEY or --api-key to one of the server's api_keys`;
}

export function httpError(status: number, text: string, scope: Scope, target: Target, path: string): CliError {
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported as text below
  }
  const error = serverErrorOf(body);
  if (!error) {
    const excerpt = text.replace(/\s+/g, " ").trim().slice(0, 200);
    return new CliError(
      `HTTP ${status} from ${target.url}${path}${excerpt ? `: ${excerpt}` : ""}`,
      status === 401 || status === 403 ? EXIT.auth : EXIT.failed,
      "is this an Opta LMX server? Check --url (or LMX_URL)",
    );
  }
  const code = error.code ?? `http_${status}`;
  if (status === 401) return new CliError(`${code} (HTTP 401): ${error.message}`, EXIT.auth, authFix(scope, target), code);
  return new CliError(`${code} (HTTP ${status}): ${error.message}`, EXIT.failed, CODE_FIXES[code] ?? null, code);
}

function errorCode(error: unknown): string | null {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR") return code;
    const inner = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const found = errorCode(inner[0]);
      if (found) return found;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/** A connection-level failure as a sentence that says where and what to check. */
export function networkError(error: unknown, url: string, timeoutMs: number | null = null): CliError {
  const parsed = new URL(url);
  const where = `${parsed.hostname.replace(/^\[|\]$/g, "")}:${parsed.port || (parsed.protocol === "https:" ? "443" : "80")}`;
  if ((error as Error)?.name === "TimeoutError") {
    return new CliError(
      `${where} accepted the connection but did not answer within ${Math.round((timeoutMs ?? 0) / 1000)} s`,
      EXIT.unreachable,
      "the server may be overloaded or stuck: check its log",
    );
  }
  const code = errorCode(error);
  switch (code) {
    case "ECONNREFUSED":
      return new CliError(
        `cannot reach ${url}: nothing listens on ${where} — is \`lmx serve\` running?`,
        EXIT.unreachable,
        "start it with `lmx serve`, or point --url (or LMX_URL) at the right address",
        code,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new CliError(
        `cannot reach ${url}: the host name ${parsed.hostname} does not resolve (${code})`,
        EXIT.unreachable,
        "check the host in --url (or LMX_URL)",
        code,
      );
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return new CliError(
        `cannot reach ${url}: connecting to ${where} timed out`,
        EXIT.unreachable,
        "a firewall or a wrong address: check --url (or LMX_URL) and that the server listens beyond loopback (host:)",
        code,
      );
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new CliError(`cannot reach ${url}: no route to ${where} (${code})`, EXIT.unreachable, "check the address and the network", code);
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
    case "EPIPE":
      return new CliError(
        `the connection to ${where} closed before an answer (${code})`,
        EXIT.unreachable,
        "is it an Opta LMX server, speaking http:// (not https://)?",
        code,
      );
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "EPROTO":
      return new CliError(`TLS failed with ${where} (${code}): the server probably speaks plain http`, EXIT.unreachable, "use an http:// URL", code);
    default:
      return new CliError(
        `cannot reach ${url}: ${(error as Error)?.message ?? String(error)}${code ? ` (${code})` : ""}`,
        EXIT.unreachable,
        null,
        code,
      );
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

export class LmxClient {
  /** Long calls (loads, streams) must not be cut by undici's 300 s header/body timeouts: callers bound them. */
  private readonly dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0, connect: { timeout: 10_000 } });

  constructor(readonly target: Target) {}

  headers(scope: Scope, json: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (json) headers["content-type"] = "application/json";
    if (scope === "admin" && this.target.adminKey) headers["x-admin-key"] = this.target.adminKey;
    if (scope === "v1" && this.target.apiKey) headers["authorization"] = `Bearer ${this.target.apiKey}`;
    return headers;
  }

  /** Sends a request; connection failures become CliErrors, HTTP statuses are left to the caller. */
  async raw(method: string, path: string, scope: Scope, options: RequestOptions = {}): Promise<Response> {
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs;
    const signals = [options.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    try {
      return await fetch(`${this.target.url}${path}`, {
        method,
        headers: this.headers(scope, options.body !== undefined),
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        ...(signals.length > 0 ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
        dispatcher: this.dispatcher,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error; // the user's Ctrl-C: the caller decides what it means
      throw networkError(error, this.target.url, timeoutMs);
    }
  }

  async json<T>(method: string, path: string, scope: Scope, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const res = await this.raw(method, path, scope, options);
    let text: string;
    try {
      text = await res.text();
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw networkError(error, this.target.url, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    }
    if (!res.ok && !(options.accept ?? []).includes(res.status)) throw httpError(res.status, text, scope, this.target, path);
    let body: T;
    try {
      body = (text ? JSON.parse(text) : null) as T;
    } catch {
      throw new CliError(
        `${this.target.url}${path} answered HTTP ${res.status} with something that is not JSON: ${text.slice(0, 120)}`,
        EXIT.failed,
        "is this an Opta LMX server? Check --url (or LMX_URL)",
      );
    }
    return { status: res.status, body, headers: res.headers };
  }

  get<T>(path: string, scope: Scope, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    return this.json<T>("GET", path, scope, options);
  }

  post<T>(path: string, scope: Scope, body: unknown, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    return this.json<T>("POST", path, scope, { ...options, body });
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }
}
