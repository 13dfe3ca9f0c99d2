/** One chat completion over POST /v1/chat/completions, streamed piece by piece (shared by `lmx do` and `lmx chat`). */
import type { ChatMessage, Usage } from "./api-types.js";
import { CliError, EXIT } from "./exit.js";
import { httpError, networkError, serverErrorOf, type LmxClient } from "./http.js";
import { sseData } from "./sse.js";

export interface ChatRequest {
  model: string;
  messages: readonly ChatMessage[];
  maxTokens?: number;
  temperature?: number;
}

export interface ChatResult {
  text: string;
  finishReason: string | null;
  usage: Usage | null;
  /** x-lmx-backend: which backend answered. */
  backend: string | null;
  elapsedMs: number;
  firstTokenMs: number | null;
}

/**
 * `lmx do` and `lmx chat` without --max-tokens: an answer, not a generation until the context is full. Where less
 * than this fits the model's context, the request is sent again without max_tokens (withDefaultMaxTokens).
 */
export const DEFAULT_MAX_TOKENS = 512;

/** `defaultCap`: send DEFAULT_MAX_TOKENS when the request names no max_tokens. */
export function requestBody(request: ChatRequest, stream: boolean, defaultCap = true): Record<string, unknown> {
  const maxTokens = request.maxTokens ?? (defaultCap ? DEFAULT_MAX_TOKENS : undefined);
  return {
    model: request.model,
    messages: request.messages,
    ...(maxTokens !== undefined ? { max_tokens: maxTokens } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
}

interface ChunkShape {
  choices?: Array<{ delta?: { content?: string | null }; finish_reason?: string | null }>;
  usage?: Usage | null;
}

/**
 * Runs `attempt` with the default max_tokens cap, and once more without it when the server says the cap does not
 * fit the context (a 400 before any text): a small-context model still answers with what fits.
 */
export async function withDefaultMaxTokens<T>(request: ChatRequest, attempt: (defaultCap: boolean) => Promise<T>): Promise<T> {
  try {
    return await attempt(true);
  } catch (error) {
    if (request.maxTokens === undefined && error instanceof CliError && error.code === "context_length_exceeded") return attempt(false);
    throw error;
  }
}

/** Streams the answer into `onText`; throws a CliError for HTTP errors and for an error event mid-stream. */
export function streamChat(client: LmxClient, request: ChatRequest, onText: (piece: string) => void, signal?: AbortSignal): Promise<ChatResult> {
  return withDefaultMaxTokens(request, (defaultCap) => streamChatOnce(client, request, onText, signal, defaultCap));
}

async function streamChatOnce(
  client: LmxClient,
  request: ChatRequest,
  onText: (piece: string) => void,
  signal: AbortSignal | undefined,
  defaultCap: boolean,
): Promise<ChatResult> {
  const started = performance.now();
  const path = "/v1/chat/completions";
  const res = await client.raw("POST", path, "v1", { body: requestBody(request, true, defaultCap), timeoutMs: null, ...(signal ? { signal } : {}) });
  if (!res.ok) throw httpError(res.status, await res.text().catch(() => ""), "v1", client.target, path);
  if (!res.body) throw new CliError(`${path} answered without a body`, EXIT.failed);
  const result: ChatResult = {
    text: "",
    finishReason: null,
    usage: null,
    backend: res.headers.get("x-lmx-backend"),
    elapsedMs: 0,
    firstTokenMs: null,
  };
  try {
    for await (const data of sseData(res.body)) {
      let chunk: unknown;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue; // a line that is not JSON carries nothing to show
      }
      const error = serverErrorOf(chunk);
      if (error) {
        const code = error.code ?? "stream_error";
        throw new CliError(
          `${code}: ${error.message} (the answer ended early)`,
          EXIT.failed,
          code === "model_crashed" ? "the next request starts a new runner: try again" : null,
          code,
        );
      }
      const { choices, usage } = chunk as ChunkShape;
      const choice = choices?.[0];
      const piece = choice?.delta?.content;
      if (piece) {
        result.firstTokenMs ??= performance.now() - started;
        result.text += piece;
        onText(piece);
      }
      if (choice?.finish_reason) result.finishReason = choice.finish_reason;
      if (usage) result.usage = usage;
    }
  } catch (error) {
    if (error instanceof CliError || signal?.aborted) throw error;
    throw networkError(error, client.target.url);
  }
  if (result.finishReason === null && !signal?.aborted) {
    throw new CliError("the stream ended before the answer finished (the connection was cut)", EXIT.failed, "check the server's log; then try again");
  }
  result.elapsedMs = performance.now() - started;
  return result;
}

/** One usage line: what the server counted, so history and cache reuse are visible. */
export function usageLine(model: string, result: ChatResult): string {
  const u = result.usage;
  const parts = [`model ${model}`];
  if (result.backend) parts.push(result.backend);
  if (u) {
    const cached = u.prompt_tokens_details?.cached_tokens;
    parts.push(`${u.prompt_tokens} prompt tokens${cached !== undefined ? ` (${cached} cached)` : ""}`);
    parts.push(`${u.completion_tokens} completion tokens`);
    const genMs = result.firstTokenMs !== null ? result.elapsedMs - result.firstTokenMs : null;
    if (genMs && genMs > 0 && u.completion_tokens > 1) parts.push(`${((u.completion_tokens - 1) / (genMs / 1000)).toFixed(1)} tok/s`);
  }
  if (result.finishReason) parts.push(`finish ${result.finishReason}`);
  return `[${parts.join(" · ")}]`;
}
