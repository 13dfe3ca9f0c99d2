/**
 * The runner's side of the gateway ↔ runner link for the llama-server engine: the same internal routes as the
 * node-llama-cpp runner (src/runners/runner-http.ts), relayed to llama-server. Answers stream through as
 * llama-server writes them (the OpenAI wire format, with llama-server's `timings`), so the per-token cost here
 * is one socket-to-socket copy. What we promise and llama-server does not is enforced here before relaying:
 * a prompt plus max_tokens that does not fit is refused (llama-server would cut the answer short), and its
 * errors are turned into our codes.
 */
import type http from "node:http";
import { LmxError, type ErrorCode } from "../../errors/codes.js";
import type { ChatCompletionRequest, CompletionRequest } from "../../openai/schemas.js";
import { messageText } from "../../openai/messages.js";
import { listenRunnerHttp, readJson, sendJson, type RunnerHttpServer } from "../../runners/internal-http.js";
import type { LlamaServerEngine } from "./engine.js";
import { readAnswer } from "./upstream.js";
const HEALTH_TIMEOUT_MS = 2_000;
const CONTROL_TIMEOUT_MS = 30_000;
/** A token decodes to at least one byte, plus BOS/EOS: bytes + this bounds the token count from above. */
const SPECIAL_TOKEN_ALLOWANCE = 4;

export function startLlamaServerProxy(engine: LlamaServerEngine, socketPath: string): Promise<RunnerHttpServer> {
  return listenRunnerHttp(socketPath, (req, res, active) => route(engine, req, res, active));
}

async function route(engine: LlamaServerEngine, req: http.IncomingMessage, res: http.ServerResponse, active: Set<AbortController>) {
  const url = req.url ?? "/";
  if (req.method === "GET" && url === "/health") {
    const ok = await engine.healthy(HEALTH_TIMEOUT_MS);
    return sendJson(res, ok ? 200 : 503, { status: ok ? "ok" : "llama-server is not answering" });
  }
  if (req.method === "GET" && url === "/stats") return sendJson(res, 200, await engine.stats());
  if (req.method !== "POST") throw new LmxError("not_found", `no runner route ${req.method} ${url}`);
  const body = await readJson(req);
  if (body === null || typeof body !== "object") throw new LmxError("invalid_json", "runner received a body that is not a JSON object");
  if (url === "/v1/embeddings") {
    throw new LmxError("model_not_embedding", "this model is loaded for generation (llama-server engine), not embeddings", { param: "model" });
  }
  let upstreamBody: Record<string, unknown>;
  if (url === "/v1/chat/completions") upstreamBody = chatBody(body as ChatCompletionRequest);
  else if (url === "/v1/completions") upstreamBody = completionBody(body as CompletionRequest);
  else throw new LmxError("not_found", `no runner route POST ${url}`);

  const controller = new AbortController();
  active.add(controller);
  engine.counters.requestsActive++;
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  try {
    await checkContext(engine, url, upstreamBody, controller.signal);
    await relay(engine, url, upstreamBody, res, controller.signal);
  } finally {
    active.delete(controller);
    engine.counters.requestsActive--;
    engine.counters.requestsServed++;
  }
}

/** Our validated request as llama-server reads it: same OpenAI names; nulls mean "default" and are dropped. */
function commonFields(request: ChatCompletionRequest | CompletionRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const copy = ["model", "temperature", "top_p", "top_k", "min_p", "seed", "stop", "presence_penalty", "frequency_penalty", "stream", "stream_options", "ignore_eos"] as const;
  for (const key of copy) {
    const value = request[key];
    if (value !== null && value !== undefined) out[key] = value;
  }
  return out;
}

function chatBody(request: ChatCompletionRequest): Record<string, unknown> {
  const out = commonFields(request);
  // templates know system/user/assistant; "developer" is OpenAI's newer name for system
  out["messages"] = request.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: m.content === null ? "" : messageText(m.content),
  }));
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  if (maxTokens !== null && maxTokens !== undefined) out["max_tokens"] = maxTokens;
  return out;
}

function completionBody(request: CompletionRequest): Record<string, unknown> {
  const out = commonFields(request);
  const prompt = typeof request.prompt === "string" ? request.prompt : (request.prompt[0] ?? "");
  if (prompt.length === 0) throw new LmxError("invalid_value", "prompt must not be empty", { param: "prompt" });
  out["prompt"] = prompt;
  if (request.max_tokens !== null && request.max_tokens !== undefined) out["max_tokens"] = request.max_tokens;
  return out;
}

/**
 * Refuses a prompt plus max_tokens beyond the per-request context, as the node-llama-cpp engine does, with the
 * same message. Without max_tokens, llama-server's own check (prompt ≥ context) is the whole rule. The prompt is
 * only tokenized when its byte length cannot already prove it fits.
 */
async function checkContext(engine: LlamaServerEngine, url: string, body: Record<string, unknown>, signal: AbortSignal): Promise<void> {
  const maxTokens = typeof body["max_tokens"] === "number" ? body["max_tokens"] : null;
  if (maxTokens === null) return;
  const contextSize = engine.info.contextSize;
  let text: string;
  if (url === "/v1/chat/completions") {
    const rendered = await control(engine, "/apply-template", { messages: body["messages"] }, signal);
    text = String((rendered as { prompt?: unknown }).prompt ?? "");
  } else {
    text = String(body["prompt"]);
  }
  if (Buffer.byteLength(text) + SPECIAL_TOKEN_ALLOWANCE + maxTokens <= contextSize) return;
  const tokenized = await control(engine, "/tokenize", { content: text, add_special: true, parse_special: true }, signal);
  const promptTokens = ((tokenized as { tokens?: unknown[] }).tokens ?? []).length;
  const param = url === "/v1/chat/completions" ? "messages" : "prompt";
  if (promptTokens >= contextSize) {
    throw new LmxError(
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens per request, but the prompt has ${promptTokens} tokens; shorten it or load the model with a larger context_size`,
      { param },
    );
  }
  const room = contextSize - promptTokens;
  if (maxTokens > room) {
    throw new LmxError(
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens per request; the prompt has ${promptTokens} tokens and max_tokens asks for ${maxTokens} more (at most ${room} fit)`,
      { param: "max_tokens" },
    );
  }
}

async function control(engine: LlamaServerEngine, path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
  const answer = await engine.upstream.call("POST", path, body, AbortSignal.any([signal, AbortSignal.timeout(CONTROL_TIMEOUT_MS)]));
  if (answer.status !== 200) throw upstreamError(answer.status, answer.json, answer.text);
  return answer.json;
}

async function relay(engine: LlamaServerEngine, url: string, body: Record<string, unknown>, res: http.ServerResponse, signal: AbortSignal) {
  let upstream: http.IncomingMessage;
  try {
    upstream = await engine.upstream.request("POST", url, JSON.stringify(body), signal);
  } catch (error) {
    if (signal.aborted) return;
    throw new LmxError("model_crashed", `llama-server did not take the request: ${(error as Error).message}`, { retryAfterSec: 1 });
  }
  if (upstream.statusCode !== 200) {
    const answer = await readAnswer(upstream);
    throw upstreamError(answer.status, answer.json, answer.text);
  }
  res.writeHead(200, { "content-type": String(upstream.headers["content-type"] ?? "application/json") });
  const delay = engine.testTokenDelayMs;
  if (delay > 0) {
    // test-only slowdown (perf gate test): llama-server writes one event per token
    for await (const chunk of upstream) {
      await new Promise((r) => setTimeout(r, delay));
      res.write(chunk);
    }
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    upstream.pipe(res);
    upstream.once("end", resolve);
    upstream.once("error", () => {
      res.destroy();
      resolve();
    });
    res.once("close", resolve);
  });
}

/** llama-server's `{"error":{"code":400,"type":"exceed_context_size_error",...}}` → one of our codes. */
function upstreamError(status: number, parsed: unknown, text: string): LmxError {
  const error = (parsed as { error?: { type?: string; message?: string } } | null)?.error;
  const message = error?.message ?? (text.slice(0, 500) || `llama-server answered HTTP ${status}`);
  let code: ErrorCode = "internal_error";
  if (error?.type === "exceed_context_size_error") code = "context_length_exceeded";
  else if (status === 400 || error?.type === "invalid_request_error") code = "invalid_request";
  else if (status === 501 || error?.type === "not_supported_error") code = "unsupported_parameter";
  else if (status === 503) code = "runner_busy";
  // busy is temporary by definition: say when to come back, as every other 503 of ours does
  return new LmxError(code, `llama-server: ${message}`, code === "runner_busy" ? { retryAfterSec: 1 } : {});
}
