/**
 * The runner's side of the gateway ↔ runner link: a minimal HTTP server on a Unix socket.
 * Plain node:http rather than Fastify: four internal routes, and every millisecond and megabyte of runner
 * start-up and RSS counts against the "lose nothing versus llama-server" goal.
 * Responses are already in their final OpenAI wire form, so the gateway forwards bytes without re-parsing them.
 */
import http from "node:http";
import { LmxError, toHttp } from "../errors/codes.js";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../openai/schemas.js";
import type { GenerationResult, LlamaCppEngine, PreparedGeneration } from "../engines/llama-cpp/engine.js";
import { RUNNER_REQUEST_ID_HEADER } from "./protocol.js";

const MAX_INTERNAL_BODY = 64 * 1024 * 1024;

export interface RunnerHttpServer {
  server: http.Server;
  /** Stops accepting; resolves when in-flight requests finished or were aborted after `graceMs`. */
  drain(graceMs: number): Promise<void>;
}

type Kind = "chat" | "completion";

export function startRunnerHttp(engine: LlamaCppEngine, socketPath: string): Promise<RunnerHttpServer> {
  const active = new Set<AbortController>();
  const server = http.createServer((req, res) => {
    void route(engine, req, res, active).catch((error: unknown) => {
      const lmx = error instanceof LmxError ? error : new LmxError("internal_error", `runner error: ${(error as Error)?.message ?? String(error)}`);
      if (!res.headersSent) sendError(res, lmx);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  const drain = async (graceMs: number) => {
    server.close();
    const deadline = Date.now() + graceMs;
    while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const controller of active) controller.abort();
    while (active.size > 0) await new Promise((r) => setTimeout(r, 10));
    server.closeAllConnections();
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve({ server, drain }));
  });
}

async function route(engine: LlamaCppEngine, req: http.IncomingMessage, res: http.ServerResponse, active: Set<AbortController>) {
  const url = req.url ?? "/";
  if (req.method === "GET" && url === "/health") return sendJson(res, 200, { status: "ok" });
  if (req.method === "GET" && url === "/stats") return sendJson(res, 200, engine.getStats());
  if (req.method !== "POST") throw new LmxError("not_found", `no runner route ${req.method} ${url}`);
  const body = await readJson(req);
  const requestId = headerValue(req, RUNNER_REQUEST_ID_HEADER) ?? `req-${Date.now().toString(36)}`;
  if (url === "/v1/embeddings") return sendEmbeddings(res, engine, body as EmbeddingRequest);
  let kind: Kind;
  let prepared: PreparedGeneration;
  if (url === "/v1/chat/completions") {
    kind = "chat";
    prepared = await engine.prepareChat(body as ChatCompletionRequest);
  } else if (url === "/v1/completions") {
    kind = "completion";
    prepared = await engine.prepareCompletion(body as CompletionRequest);
  } else {
    throw new LmxError("not_found", `no runner route POST ${url}`);
  }
  const request = body as ChatCompletionRequest | CompletionRequest;
  const controller = new AbortController();
  active.add(controller);
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  try {
    const call: GenerationCall = { res, engine, prepared, kind, request, requestId, signal: controller.signal };
    if (request.stream) await streamGeneration(call);
    else await answerGeneration(call);
  } finally {
    active.delete(controller);
  }
}

function created(): number {
  return Math.floor(Date.now() / 1000);
}

function usageOf(result: GenerationResult) {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: result.promptTokens + result.completionTokens,
    prompt_tokens_details: { cached_tokens: result.cachedTokens },
  };
}

/** llama-server's field names, so tools that read its timings read ours. */
function timingsOf(result: GenerationResult) {
  return {
    prompt_n: result.promptTokens - result.cachedTokens,
    cache_n: result.cachedTokens,
    prompt_ms: round(result.promptMs),
    predicted_n: result.completionTokens,
    predicted_ms: round(result.generationMs),
  };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** One generation request as the two answer styles (whole JSON, SSE stream) need it. */
interface GenerationCall {
  res: http.ServerResponse;
  engine: LlamaCppEngine;
  prepared: PreparedGeneration;
  kind: Kind;
  request: ChatCompletionRequest | CompletionRequest;
  requestId: string;
  signal: AbortSignal;
}

async function answerGeneration({ res, engine, prepared, kind, request, requestId, signal }: GenerationCall) {
  const result = await engine.generate(prepared, () => {}, signal);
  if (signal.aborted) return;
  const choice =
    kind === "chat"
      ? { index: 0, message: { role: "assistant", content: result.text }, logprobs: null, finish_reason: result.finishReason }
      : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason };
  sendJson(res, 200, {
    id: requestId,
    object: kind === "chat" ? "chat.completion" : "text_completion",
    created: created(),
    model: request.model,
    choices: [choice],
    usage: usageOf(result),
    timings: timingsOf(result),
  });
}

async function streamGeneration({ res, engine, prepared, kind, request, requestId, signal }: GenerationCall) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  // Everything but the text is fixed for the whole stream: build it once, splice each piece in.
  const head = `data: {"id":${JSON.stringify(requestId)},"object":"${object}","created":${created()},"model":${JSON.stringify(request.model)},"choices":[{"index":0,`;
  const pieceOpen = kind === "chat" ? `${head}"delta":{"content":` : `${head}"text":`;
  const pieceClose = kind === "chat" ? `},"logprobs":null,"finish_reason":null}]}\n\n` : `,"logprobs":null,"finish_reason":null}]}\n\n`;
  if (kind === "chat") res.write(`${head}"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`);
  const result = await engine.generate(prepared, (piece) => res.write(pieceOpen + JSON.stringify(piece) + pieceClose), signal);
  if (signal.aborted) {
    res.end();
    return;
  }
  const finishBody = kind === "chat" ? `"delta":{}` : `"text":""`;
  res.write(`${head}${finishBody},"logprobs":null,"finish_reason":"${result.finishReason}"}],"timings":${JSON.stringify(timingsOf(result))}}\n\n`);
  if (request.stream_options?.include_usage) {
    const usageChunk = {
      id: requestId,
      object,
      created: created(),
      model: request.model,
      choices: [],
      usage: usageOf(result),
    };
    res.write(`data: ${JSON.stringify(usageChunk)}\n\n`);
  }
  res.end("data: [DONE]\n\n");
}

async function sendEmbeddings(res: http.ServerResponse, engine: LlamaCppEngine, request: EmbeddingRequest) {
  if (request.dimensions !== undefined && request.dimensions !== engine.info.embeddingSize) {
    throw new LmxError("unsupported_parameter", `this model's embeddings have ${engine.info.embeddingSize} dimensions; 'dimensions' cannot change that`, {
      param: "dimensions",
    });
  }
  const result = await engine.embed(request);
  const base64 = request.encoding_format === "base64";
  sendJson(res, 200, {
    object: "list",
    model: request.model,
    data: result.vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: base64 ? Buffer.from(Float32Array.from(vector).buffer).toString("base64") : vector,
    })),
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  });
}

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_INTERNAL_BODY) throw new LmxError("request_too_large", "request body too large for the runner");
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new LmxError("invalid_json", "runner received a body that is not JSON");
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, error: LmxError) {
  const { status, headers, body } = toHttp(error);
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
