/**
 * The node-llama-cpp runner's routes on its Unix socket (server, errors and drain: internal-http.ts).
 * Responses are already in their final OpenAI wire form, so the gateway forwards bytes without re-parsing them.
 */
import type http from "node:http";
import { LmxError, toOpenAiBody } from "../errors/codes.js";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../api/openai/schemas.js";
import type { GenerationResult, LlamaCppEngine, PreparedGeneration } from "../engines/llama-cpp/engine.js";
import { listenRunnerHttp, readJson, sendJson, type RunnerHttpServer } from "./internal-http.js";
import { RUNNER_REQUEST_ID_HEADER } from "./protocol.js";
import { parseRawCompletion, type CompletionFinal, type CompletionProbability, type RawCompletionBody } from "../api/llama/completion.js";

type Kind = "chat" | "completion";

export function startRunnerHttp(engine: LlamaCppEngine, socketPath: string): Promise<RunnerHttpServer> {
  return listenRunnerHttp(socketPath, (req, res, active) => route(engine, req, res, active));
}

async function route(engine: LlamaCppEngine, req: http.IncomingMessage, res: http.ServerResponse, active: Set<AbortController>) {
  const url = req.url ?? "/";
  if (req.method === "GET" && url === "/health") return sendJson(res, 200, { status: "ok" });
  if (req.method === "GET" && url === "/stats") return sendJson(res, 200, engine.getStats());
  if (req.method !== "POST") throw new LmxError("not_found", `no runner route ${req.method} ${url}`);
  const body = await readJson(req);
  const requestId = headerValue(req, RUNNER_REQUEST_ID_HEADER) ?? `req-${Date.now().toString(36)}`;
  if (url === "/v1/embeddings") return sendEmbeddings(res, engine, body as EmbeddingRequest);
  if (url === "/completion") return rawCompletion(engine, parseRawCompletion(body), res, active);
  if (url === "/tokenize") return sendJson(res, 200, { tokens: tokenize(engine, body) });
  if (url !== "/v1/chat/completions" && url !== "/v1/completions") throw new LmxError("not_found", `no runner route POST ${url}`);
  const kind: Kind = url === "/v1/chat/completions" ? "chat" : "completion";
  // Listening before preparing: a client that leaves while its request waits for a sequence must stop the wait
  // (the close event would otherwise come and go unheard, and its generation run to the end for nobody).
  const controller = new AbortController();
  active.add(controller);
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  let prepared: PreparedGeneration | null = null;
  try {
    try {
      prepared =
        kind === "chat"
          ? await engine.prepareChat(body as ChatCompletionRequest, controller.signal)
          : await engine.prepareCompletion(body as CompletionRequest, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return; // nobody is left to answer
      throw error;
    }
    const request = body as ChatCompletionRequest | CompletionRequest;
    const call: GenerationCall = { res, engine, prepared, kind, request, requestId, signal: controller.signal };
    if (request.stream) await streamGeneration(call);
    else await answerGeneration(call);
  } finally {
    // generate gives the sequence back itself; this covers a failure before it started (releasing twice is a no-op)
    if (prepared) engine.release(prepared);
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
  let result: GenerationResult;
  try {
    result = await engine.generate(prepared, (piece) => res.write(pieceOpen + JSON.stringify(piece) + pieceClose), signal);
  } catch (error) {
    if (signal.aborted) return;
    // The runner is alive: say what failed in the stream. A cut connection would reach the client as
    // model_crashed, which sends operators looking for a crash that never happened.
    const lmx =
      error instanceof LmxError ? error : new LmxError("internal_error", `generation failed: ${(error as Error)?.message ?? String(error)}`);
    res.end(`data: ${JSON.stringify(toOpenAiBody(lmx))}\n\ndata: [DONE]\n\n`);
    return;
  }
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

/**
 * llama-server's native `/completion` (src/api/llama/completion.ts): one raw generation, answered in
 * llama-server's shapes — a JSON object, or SSE events (one per piece of text, then a final event with
 * `stop: true`; no `[DONE]`, as llama-server ends this route's streams).
 */
async function rawCompletion(engine: LlamaCppEngine, request: RawCompletionBody, res: http.ServerResponse, active: Set<AbortController>) {
  const controller = new AbortController();
  active.add(controller);
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  const signal = controller.signal;
  let prepared: PreparedGeneration | null = null;
  try {
    try {
      prepared = await engine.prepareRaw(request, signal);
    } catch (error) {
      if (signal.aborted) return;
      throw error;
    }
    if (!request.stream) {
      const probabilities: CompletionProbability[] = [];
      const result = await engine.generate(prepared, (_piece, entries) => entries && probabilities.push(...entries), signal);
      if (signal.aborted) return;
      sendJson(res, 200, { ...finalOf(result, result.text), ...(request.n_probs > 0 ? { completion_probabilities: probabilities } : {}) });
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let result: GenerationResult;
    try {
      result = await engine.generate(
        prepared,
        (piece, entries) =>
          res.write(
            entries
              ? `data: {"content":${JSON.stringify(piece)},"stop":false,"completion_probabilities":${JSON.stringify(entries)}}\n\n`
              : `data: {"content":${JSON.stringify(piece)},"stop":false}\n\n`,
          ),
        signal,
      );
    } catch (error) {
      if (signal.aborted) return;
      const lmx =
        error instanceof LmxError ? error : new LmxError("internal_error", `generation failed: ${(error as Error)?.message ?? String(error)}`);
      res.end(`data: ${JSON.stringify(toOpenAiBody(lmx))}\n\n`);
      return;
    }
    if (signal.aborted) {
      res.end();
      return;
    }
    // in a stream the text went out piece by piece: the last event carries none (as llama-server's)
    res.end(`data: ${JSON.stringify(finalOf(result, ""))}\n\n`);
  } finally {
    if (prepared) engine.release(prepared);
    active.delete(controller);
  }
}

/** llama-server's `/tokenize`: `content`, `add_special` (default false) and `parse_special` (default true), answering token ids. */
function tokenize(engine: LlamaCppEngine, body: unknown): number[] {
  const { content, add_special: addSpecial = false, parse_special: parseSpecial = true } = (body ?? {}) as Record<string, unknown>;
  if (typeof content !== "string") throw new LmxError("invalid_value", "/tokenize needs 'content' as a string", { param: "content" });
  if (typeof addSpecial !== "boolean" || typeof parseSpecial !== "boolean") {
    throw new LmxError("invalid_value", "/tokenize's add_special and parse_special are booleans", { param: "add_special" });
  }
  if (engine.isEmbeddingModel) throw new LmxError("model_is_embedding", "this model is loaded for embeddings, not generation", { param: "model" });
  return engine.tokenizeRaw(content, addSpecial, parseSpecial).map(Number);
}

function finalOf(result: GenerationResult, content: string): CompletionFinal {
  return {
    content,
    stop: true,
    stop_type: result.stopType,
    stopping_word: result.stoppingWord,
    tokens_predicted: result.completionTokens,
    tokens_evaluated: result.promptTokens,
    tokens_cached: result.cachedTokens,
    timings: timingsOf(result),
  };
}

async function sendEmbeddings(res: http.ServerResponse, engine: LlamaCppEngine, request: EmbeddingRequest) {
  if (request.dimensions !== undefined && request.dimensions !== engine.info.embeddingSize) {
    throw new LmxError(
      "unsupported_parameter",
      `this model's embeddings have ${engine.info.embeddingSize} dimensions; 'dimensions' cannot change that`,
      {
        param: "dimensions",
      },
    );
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
