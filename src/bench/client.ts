/**
 * One OpenAI-compatible request, timed from the client's side: time to the first generated text, the gaps
 * between SSE chunks as they arrive, and what the server says it did (usage, llama-server-style timings).
 * Works against our gateway, llama.cpp's llama-server, or anything else that streams OpenAI chunks.
 */
import { performance } from "node:perf_hooks";
import { Agent, request, type Dispatcher } from "undici";
import { responseFormatField, type ResponseFormatKind } from "./response-format.js";

export type Endpoint = "completions" | "chat";

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

/** llama-server's `timings` (ours sends the same names); every field is optional because servers differ. */
export interface ServerTimings {
  prompt_n?: number;
  cache_n?: number;
  prompt_ms?: number;
  predicted_n?: number;
  predicted_ms?: number;
  /** Speculative decoding, where the server does it (llama-server names). */
  draft_n?: number;
  draft_n_accepted?: number;
}

export interface RequestSample {
  ok: boolean;
  /** HTTP status, or null when no response arrived. */
  status: number | null;
  error: string | null;
  /** From sending the request to the first chunk that carries generated text. */
  ttftMs: number | null;
  e2eMs: number;
  /** Gaps between consecutive text-carrying chunks, in arrival order. */
  itlMs: number[];
  /** Text-carrying chunks actually received (≈ tokens for servers that send one token per chunk). */
  contentChunks: number;
  /** The server's count (usage, else timings.predicted_n); null when it reported neither. */
  completionTokens: number | null;
  promptTokens: number | null;
  cachedTokens: number | null;
  finishReason: string | null;
  timings: ServerTimings | null;
  text: string;
}

export interface TargetConnection {
  url: string;
  model: string;
  apiKey: string | null;
  dispatcher: Dispatcher;
}

export interface GenerationShape {
  endpoint: Endpoint;
  maxTokens: number;
  /** Sent only to servers that accept it (detected per target). */
  ignoreEos: boolean;
  temperature: number | null;
  seed: number | null;
  timeoutMs: number;
  /** Chat only: the constraint asked of the output (`text`: none sent). */
  responseFormat: ResponseFormatKind;
}

/**
 * One keep-alive pool per target: connection set-up must not be part of what a level measures. Idle sockets
 * are dropped after 2 s, before servers drop them (llama-server's HTTP library closes idle ones after 5 s):
 * while the other target runs a level, ours would otherwise be reused just as the server closes them.
 */
export function createDispatcher(connections: number, timeoutMs: number): Agent {
  return new Agent({
    connections,
    pipelining: 1,
    keepAliveTimeout: 2_000,
    keepAliveMaxTimeout: 2_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
}

/** A reused keep-alive socket the server had just closed: the request never reached it, so sending again is safe. */
function isStaleSocket(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "UND_ERR_SOCKET" || code === "ECONNRESET" || code === "EPIPE";
}

export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, "") + path;
}

/** Base URLs may be given with or without the `/v1` suffix that OpenAI clients use. */
export function apiPath(base: string, path: string): string {
  return /\/v1\/?$/.test(base) ? joinUrl(base, path.replace(/^\/v1/, "")) : joinUrl(base, path);
}

export function generationBody(
  conn: TargetConnection,
  shape: GenerationShape,
  input: { prompt: string } | { messages: ChatTurn[] },
  stream: boolean,
  maxTokens = shape.maxTokens,
): Record<string, unknown> {
  const body: Record<string, unknown> = { model: conn.model, max_tokens: maxTokens, stream };
  if ("prompt" in input) body["prompt"] = input.prompt;
  else body["messages"] = input.messages;
  if (stream) body["stream_options"] = { include_usage: true };
  if (shape.temperature !== null) body["temperature"] = shape.temperature;
  if (shape.seed !== null) body["seed"] = shape.seed;
  if (shape.ignoreEos) body["ignore_eos"] = true;
  const format = "messages" in input ? responseFormatField(shape.responseFormat) : null;
  if (format) body["response_format"] = format;
  return body;
}

function headers(conn: TargetConnection): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json", accept: "text/event-stream, application/json" };
  if (conn.apiKey) h["authorization"] = `Bearer ${conn.apiKey}`;
  return h;
}

function pathFor(endpoint: Endpoint): string {
  return endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions";
}

export interface JsonAnswer {
  status: number;
  body: unknown;
  text: string;
}

/** A plain (non-streamed) JSON POST: calibration probes and capability checks. */
export async function postJson(conn: TargetConnection, path: string, body: unknown, timeoutMs: number): Promise<JsonAnswer> {
  const res = await request(apiPath(conn.url, path), {
    method: "POST",
    dispatcher: conn.dispatcher,
    headers: headers(conn),
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return readJsonAnswer(res);
}

export async function getJson(url: string, dispatcher: Dispatcher, auth: Record<string, string>, timeoutMs = 10_000): Promise<JsonAnswer> {
  const res = await request(url, { method: "GET", dispatcher, headers: auth, signal: AbortSignal.timeout(timeoutMs) });
  return readJsonAnswer(res);
}

/** The status, the raw text and, when it parses, the JSON of an answer (error bodies need not be JSON). */
async function readJsonAnswer(res: Dispatcher.ResponseData): Promise<JsonAnswer> {
  const text = await res.body.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return { status: res.statusCode, body: parsed, text };
}

/** The message of an OpenAI error body, or the start of whatever came back. */
export function errorMessage(answer: { status: number; body: unknown; text: string }): string {
  const body = answer.body as { error?: { message?: unknown } | string } | null;
  if (body && typeof body === "object" && body.error) {
    if (typeof body.error === "string") return `${answer.status}: ${body.error}`;
    if (typeof body.error.message === "string") return `${answer.status}: ${body.error.message}`;
  }
  return `${answer.status}: ${answer.text.slice(0, 200)}`;
}

interface ChunkFields {
  error?: unknown;
  choices?: Array<{ text?: unknown; delta?: { content?: unknown }; finish_reason?: unknown }>;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } | null };
  timings?: ServerTimings;
}

function num(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** Sends one streamed generation and times it. Never throws: failures come back as samples with `ok: false`. */
export async function streamOnce(
  conn: TargetConnection,
  shape: GenerationShape,
  input: { prompt: string } | { messages: ChatTurn[] },
): Promise<RequestSample> {
  const sample: RequestSample = {
    ok: false,
    status: null,
    error: null,
    ttftMs: null,
    e2eMs: 0,
    itlMs: [],
    contentChunks: 0,
    completionTokens: null,
    promptTokens: null,
    cachedTokens: null,
    finishReason: null,
    timings: null,
    text: "",
  };
  const body = JSON.stringify(generationBody(conn, shape, input, true));
  let started = performance.now();
  let lastContentAt = 0;
  let done = false;
  const send = () =>
    request(apiPath(conn.url, pathFor(shape.endpoint)), {
      method: "POST",
      dispatcher: conn.dispatcher,
      headers: headers(conn),
      body,
      signal: AbortSignal.timeout(shape.timeoutMs),
    });
  try {
    let res: Dispatcher.ResponseData;
    try {
      res = await send();
    } catch (error) {
      if (!isStaleSocket(error)) throw error;
      started = performance.now();
      res = await send();
    }
    sample.status = res.statusCode;
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
      sample.error = errorMessage({ status: res.statusCode, body: parsed, text });
      sample.e2eMs = performance.now() - started;
      return sample;
    }
    const decoder = new TextDecoder();
    let buffer = "";
    const onEvent = (data: string, at: number): void => {
      if (data === "[DONE]") {
        done = true;
        return;
      }
      let chunk: ChunkFields;
      try {
        chunk = JSON.parse(data) as ChunkFields;
      } catch {
        throw new Error(`malformed SSE data: ${data.slice(0, 120)}`);
      }
      if (chunk.error !== undefined) {
        const inner = chunk.error as { message?: unknown; code?: unknown };
        throw new Error(`stream error: ${typeof inner.message === "string" ? inner.message : JSON.stringify(chunk.error)}`);
      }
      const choice = chunk.choices?.[0];
      if (choice) {
        const content = choice.delta?.content ?? choice.text;
        if (typeof content === "string" && content.length > 0) {
          if (sample.ttftMs === null) sample.ttftMs = at - started;
          else sample.itlMs.push(at - lastContentAt);
          lastContentAt = at;
          sample.contentChunks++;
          sample.text += content;
        }
        if (typeof choice.finish_reason === "string") sample.finishReason = choice.finish_reason;
      }
      if (chunk.usage) {
        sample.completionTokens = num(chunk.usage.completion_tokens) ?? sample.completionTokens;
        sample.promptTokens = num(chunk.usage.prompt_tokens) ?? sample.promptTokens;
        sample.cachedTokens = num(chunk.usage.prompt_tokens_details?.cached_tokens) ?? sample.cachedTokens;
      }
      if (chunk.timings && typeof chunk.timings === "object") sample.timings = chunk.timings;
    };
    for await (const raw of res.body) {
      // one timestamp per read: events that arrived together really did arrive together
      const at = performance.now();
      buffer += decoder.decode(raw as Buffer, { stream: true });
      buffer = buffer.replace(/\r\n/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) onEvent(data, at);
      }
    }
    sample.e2eMs = performance.now() - started;
    if (!done && sample.finishReason === null) throw new Error("the stream ended before its last chunk");
    if (sample.completionTokens === null) sample.completionTokens = num(sample.timings?.predicted_n) ?? null;
    if (sample.promptTokens === null && sample.timings) {
      const p = num(sample.timings.prompt_n);
      const c = num(sample.timings.cache_n);
      if (p !== null) sample.promptTokens = p + (c ?? 0);
    }
    if (sample.cachedTokens === null) sample.cachedTokens = num(sample.timings?.cache_n);
    sample.ok = true;
    return sample;
  } catch (error) {
    sample.e2eMs = performance.now() - started;
    sample.error = (error as Error).message || String(error);
    return sample;
  }
}

/** Output tokens a sample stands for: the server's count when it gave one, else the chunks we received. */
export function outputTokens(sample: RequestSample): number {
  return sample.completionTokens ?? sample.contentChunks;
}
