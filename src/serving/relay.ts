/**
 * Forwards one generation or embedding request to a runner and relays the answer. Runners already speak the
 * final OpenAI wire format, so streamed bytes go straight through: no per-token parsing in the gateway.
 * If the runner dies mid-way, the client gets a clear error (an SSE error event and [DONE] for streams).
 */
import type { ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import type { RunnerHandle } from "../engines/backend.js";
import type { DirectRoute } from "../engines/child-server/direct.js";
import { fromOpenAiBody, LmxError, toOpenAiBody } from "../errors/codes.js";
import type { RequestRecorder } from "../metrics/request.js";
import { ResponseTail, SseTokenScanner, usageFromTail } from "../metrics/sse.js";
import { RUNNER_REQUEST_ID_HEADER } from "../runner/protocol.js";
import { drainWithin } from "./write-deadline.js";

/** Without a write deadline a stalled client is waited for as long as it stays connected (setTimeout's maximum). */
const NO_DEADLINE_MS = 2 ** 31 - 1;

/** How long to wait for the exit event after the runner connection broke, to say why it broke. */
const EXIT_GRACE_MS = 500;

/**
 * What the relay needs of a runner: where to send, and how to explain a broken connection. A local runner's
 * handle is one; so is a remote node's (src/nodes/), which has no process.
 */
export type RelayTarget = Pick<RunnerHandle, "dispatcher" | "direct" | "exited" | "brokenError">;

export interface ForwardOptions {
  runner: RelayTarget;
  path: string;
  body: unknown;
  requestId: string;
  stream: boolean;
  signal: AbortSignal;
  extraHeaders: Record<string, string>;
  /** Sent to the runner besides the body's own (trace context). */
  runnerHeaders: Record<string, string>;
  /** Takes token arrivals and usage; null records nothing. */
  recorder: RequestRecorder | null;
  /**
   * How long the client may leave written bytes unread (socket buffers full) before the answer is cut and the
   * runner request aborted, so its sequence serves someone else. Called back once when that happens.
   */
  writeDeadline?: { ms: number; onTimeout: () => void };
}

/** How a forwarded request ended once the runner had accepted it (a refusal before that is thrown). */
export type ForwardOutcome = { kind: "answered" } | { kind: "client_closed" } | { kind: "failed"; error: LmxError };

export async function crashError(runner: Pick<RunnerHandle, "exited" | "brokenError">, cause: unknown): Promise<LmxError> {
  if (runner.brokenError) return runner.brokenError(cause);
  const exit = await Promise.race([runner.exited, new Promise<null>((r) => setTimeout(() => r(null), EXIT_GRACE_MS).unref())]);
  if (exit && exit.reason !== "stopped") return exit.reason;
  if (exit) return new LmxError("model_crashed", "the model was unloaded while this request was running", { retryAfterSec: 1 });
  return new LmxError("model_crashed", `lost the connection to the model runner: ${(cause as Error)?.message ?? String(cause)}`, {
    retryAfterSec: 1,
  });
}

/** Where an answer goes: the raw response, taken over from the HTTP framework once the runner accepted. */
export interface ResponseSink {
  raw: ServerResponse;
  hijack(): void;
}

export async function forwardToRunner(reply: ResponseSink, options: ForwardOptions): Promise<ForwardOutcome> {
  const direct = options.runner.direct;
  if (direct) direct.active++;
  try {
    return await forward(reply, options, direct);
  } finally {
    if (direct) {
      direct.active--;
      direct.served++;
    }
  }
}

async function forward(reply: ResponseSink, options: ForwardOptions, direct: DirectRoute | null): Promise<ForwardOutcome> {
  const { runner, signal, recorder } = options;
  const { path } = options;
  const body = options.body as Record<string, unknown>;
  // the child generates while its check (token count: no silent truncation) runs; nothing is answered before
  // the check passed, so a refused request is refused exactly as before
  const controller = new AbortController();
  // the client's abort ends the child request too (a listener, not AbortSignal.any: cheaper per request on Node 20)
  if (direct) {
    if (signal.aborted) controller.abort();
    else signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  const upstreamSignal = direct ? controller.signal : signal;
  const opened = await openRunnerRequest(runner, direct, {
    path,
    body,
    headers: { ...options.runnerHeaders, [RUNNER_REQUEST_ID_HEADER]: options.requestId },
    signal: upstreamSignal,
    clientSignal: signal,
    onRefused: () => controller.abort(),
  });
  if (!opened) return { kind: "client_closed" }; // nothing to answer
  const { upstream } = opened;
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    ...options.extraHeaders,
    "content-type": options.stream ? "text/event-stream; charset=utf-8" : "application/json",
    "cache-control": "no-cache",
    ...(options.stream ? { connection: "keep-alive", "x-accel-buffering": "no" } : {}),
  });
  // Metrics read the stream as it passes: token events are counted by byte search (no JSON.parse per token),
  // and the usage is parsed once from the last bytes.
  const scanner = options.stream && recorder ? new SseTokenScanner() : null;
  const tail = recorder ? new ResponseTail() : null;
  let finishSeen = false;
  try {
    for await (const chunk of upstream.body) {
      const bytes = chunk as Buffer;
      if (scanner) {
        const tokens = scanner.scan(bytes);
        if (tokens > 0 || (scanner.finished && !finishSeen)) {
          const now = performance.now();
          recorder!.tokens(tokens, now);
          if (scanner.finished && !finishSeen) {
            finishSeen = true;
            recorder!.streamFinished(now);
          }
        }
      }
      tail?.push(bytes);
      if (!raw.write(bytes) && (await drainWithin(raw, signal, options.writeDeadline?.ms ?? NO_DEADLINE_MS)) === "timed_out") {
        options.writeDeadline?.onTimeout();
        // destroying the client socket closes the reply, which aborts `signal` and with it the runner request
        raw.destroy();
        upstream.body.destroy();
        return { kind: "client_closed" };
      }
    }
    raw.end();
  } catch (error) {
    if (signal.aborted || raw.destroyed) {
      raw.destroy();
      return { kind: "client_closed" };
    }
    const lmx = await crashError(runner, error);
    if (options.stream) {
      raw.end(`data: ${JSON.stringify(toOpenAiBody(lmx))}\n\ndata: [DONE]\n\n`);
    } else {
      // headers are gone already; a cut connection is the only honest signal left
      raw.destroy(lmx);
    }
    return { kind: "failed", error: lmx };
  }
  if (tail) {
    const usage = usageFromTail(tail.buffer());
    if (usage) recorder!.usage(usage);
  }
  return { kind: "answered" };
}

export interface RunnerRequest {
  path: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  /** Aborts the request to the runner (or child). */
  signal: AbortSignal;
  /** The client's: once it is aborted nothing is answered. */
  clientSignal: AbortSignal;
  /** Called when the direct route's check refuses the request, to end the generation it raced with. */
  onRefused: () => void;
}

/**
 * Sends one generation request to a runner, or straight to its child server (prepared by the recipe, its check
 * awaited before anything is answered), and returns the 200 response. A refusal is thrown as our error, with the
 * runner's Retry-After; a broken connection as the runner's crash. Null: the client left first.
 */
export async function openRunnerRequest(
  runner: RelayTarget,
  direct: DirectRoute | null,
  request: RunnerRequest,
): Promise<{ upstream: Dispatcher.ResponseData; mapError: (status: number, json: unknown, text: string) => LmxError } | null> {
  let { path, body } = request;
  let check: Promise<void> | null = null;
  if (direct) ({ path, body, check } = direct.prepare(path, body, request.signal));
  // a refusal ends the generation it raced with at once (a non-streamed answer would otherwise run to its end)
  check?.catch(request.onRefused);
  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await (direct?.dispatcher ?? runner.dispatcher).request({
      path,
      method: "POST",
      headers: { ...request.headers, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: request.signal,
      // a fresh connection per request to a child server (see DirectRoute)
      ...(direct ? { reset: true } : {}),
    });
  } catch (error) {
    if (request.clientSignal.aborted) return null;
    // a refusal by the check ends the request it raced with: the check's error is the answer
    if (check) await check;
    throw await crashError(runner, error);
  }
  if (check) {
    try {
      await check;
    } catch (error) {
      upstream.body.destroy();
      throw error;
    }
  }
  const mapError = (status: number, json: unknown, text: string): LmxError =>
    direct ? direct.mapError(status, json, text) : fromOpenAiBody(json, "internal_error", `runner answered HTTP ${status}: ${text.slice(0, 300)}`);
  if (upstream.statusCode !== 200) {
    const text = await upstream.body.text().catch(() => "");
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // an unparsable error body is itself the problem to report
    }
    throw withRetryAfter(mapError(upstream.statusCode, json, text), upstream.headers["retry-after"]);
  }
  return { upstream, mapError };
}

/**
 * The runner's Retry-After crosses the process boundary with its error (the body alone would lose it); a
 * retryable error without one gets a second, so a client is never told "busy" without when to come back.
 */
export function withRetryAfter(error: LmxError, header: string | string[] | undefined): LmxError {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  const retryAfterSec =
    Number.isFinite(seconds) && seconds > 0 ? seconds : (error.retryAfterSec ?? (error.retryable && error.status === 503 ? 1 : undefined));
  if (retryAfterSec === error.retryAfterSec) return error;
  return new LmxError(error.code, error.message, { param: error.param, retryAfterSec, details: error.details, cause: error });
}
