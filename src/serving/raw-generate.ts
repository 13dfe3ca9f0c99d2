/**
 * The gateway's client for one raw, optionally grammar-constrained generation on a leased runner: the chat layer
 * renders the prompt and builds the grammar, and this sends it in llama-server's `/completion` dialect (which
 * both engines speak) and reads the answer back as text pieces with their token probabilities. It always
 * streams: the caller decides whether its own client gets a stream. The llama-server engine is reached
 * directly when the runner offers it (prepared by the same recipe the runner's relay uses), else through the
 * runner's socket, exactly as `relay.ts` does for the OpenAI routes.
 */
import type { RunnerHandle } from "../engines/backend.js";
import { LmxError } from "../errors/codes.js";
import type { CompletionFinal, CompletionPartial, CompletionProbability } from "../api/llama/completion.js";
import { RUNNER_REQUEST_ID_HEADER } from "../runner/protocol.js";
import { crashError, openRunnerRequest } from "./relay.js";

const PATH = "/completion";

export interface RawGenerateRequest {
  /** The rendered prompt; special-token text in it is tokenized as the special token. */
  prompt: string;
  /** null: until the context is full (then the finish reason is "length"). */
  maxTokens: number | null;
  temperature?: number | null;
  topP?: number | null;
  topK?: number | null;
  minP?: number | null;
  seed?: number | null;
  presencePenalty?: number | null;
  frequencyPenalty?: number | null;
  stop: string[];
  /** GBNF; null = unconstrained. */
  grammar: string | null;
  /** Top-N log-probabilities per token (0 = none, at most 20). */
  nProbs: number;
  /** Special tokens (markers) the output must show as text. */
  preservedTokens: string[];
  ignoreEos?: boolean;
}

import type { TokenLogprob } from "../chat/events.js";

/** A generated token as the runners report it (llama-server's `completion_probabilities` entries). */
export type RawToken = TokenLogprob;

export type RawChunk =
  | { type: "text"; text: string; tokens: RawToken[] }
  | {
      type: "done";
      finishReason: "stop" | "length";
      /** The stop string that ended the generation, when one did (a client's or the template's end marker). */
      stoppingWord: string | null;
      promptTokens: number;
      cachedTokens: number;
      completionTokens: number;
      promptMs: number;
      generationMs: number;
    };

/** The request in the `/completion` dialect (src/api/llama/completion.ts); unset knobs are left to the engine. */
export function rawCompletionBody(request: RawGenerateRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    prompt: request.prompt,
    n_predict: request.maxTokens ?? -1,
    stop: request.stop,
    n_probs: request.nProbs,
    preserved_tokens: request.preservedTokens,
    stream: true,
    cache_prompt: true,
  };
  if (request.grammar !== null && request.grammar !== "") body["grammar"] = request.grammar;
  if (request.ignoreEos) body["ignore_eos"] = true;
  const knobs = [
    ["temperature", request.temperature],
    ["top_p", request.topP],
    ["top_k", request.topK],
    ["min_p", request.minP],
    ["seed", request.seed],
    ["presence_penalty", request.presencePenalty],
    ["frequency_penalty", request.frequencyPenalty],
  ] as const;
  for (const [key, value] of knobs) if (value !== null && value !== undefined) body[key] = value;
  return body;
}

/**
 * Streams one raw generation. Refusals before the first chunk (context, grammar, busy) and failures mid-stream
 * are thrown as our errors; a dead runner is `model_crashed`. Aborting `signal`, or leaving the loop early,
 * ends the generation in the engine (its connection closes). After an abort the iteration just ends.
 */
export async function* rawGenerate(
  runner: RunnerHandle,
  request: RawGenerateRequest,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): AsyncIterable<RawChunk> {
  const direct = runner.direct;
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (signal.aborted) return;
  signal.addEventListener("abort", abort, { once: true });
  if (direct) direct.active++;
  let finished = false;
  try {
    const opened = await openRunnerRequest(runner, direct, {
      path: PATH,
      body: rawCompletionBody(request),
      headers: { ...headers, [RUNNER_REQUEST_ID_HEADER]: headers[RUNNER_REQUEST_ID_HEADER] ?? "raw" },
      signal: controller.signal,
      clientSignal: signal,
      onRefused: abort,
    });
    if (!opened) return;
    const { upstream, mapError } = opened;
    const events = new SseEvents();
    try {
      for await (const bytes of upstream.body) {
        for (const data of events.push(bytes as Buffer)) {
          // events already received in the same read are not handed out after an abort
          if (signal.aborted) return;
          const event = parseJson(data) as (CompletionPartial | CompletionFinal | { error: unknown }) | null;
          if (event === null || typeof event !== "object")
            throw new LmxError("internal_error", `the runner sent an unreadable event: ${data.slice(0, 200)}`);
          if ("error" in event) throw mapError(500, event, data);
          const tokens = (event.completion_probabilities ?? []).map(rawToken);
          if (event.content !== "" || tokens.length > 0) yield { type: "text", text: event.content, tokens };
          if (event.stop) {
            finished = true;
            yield doneChunk(event);
            return;
          }
        }
      }
    } catch (error) {
      if (error instanceof LmxError || signal.aborted) {
        if (signal.aborted) return;
        throw error;
      }
      throw await crashError(runner, error);
    }
    if (signal.aborted) return;
    throw await crashError(runner, new Error("the answer ended before its last event"));
  } finally {
    signal.removeEventListener("abort", abort);
    // a consumer that stopped early (or any failure) must not leave the engine generating for nobody
    if (!finished) controller.abort();
    if (direct) {
      direct.active--;
      direct.served++;
    }
  }
}

function rawToken(entry: CompletionProbability): RawToken {
  return {
    text: entry.token,
    logprob: entry.logprob,
    bytes: entry.bytes,
    top: (entry.top_logprobs ?? []).map((t) => ({ text: t.token, logprob: t.logprob, bytes: t.bytes })),
  };
}

function doneChunk(final: CompletionFinal): RawChunk {
  const timings = final.timings;
  return {
    type: "done",
    finishReason: final.stop_type === "limit" ? "length" : "stop",
    stoppingWord: final.stop_type === "word" && final.stopping_word !== "" ? final.stopping_word : null,
    promptTokens: final.tokens_evaluated,
    cachedTokens: timings?.cache_n ?? 0,
    completionTokens: final.tokens_predicted,
    promptMs: timings?.prompt_ms ?? 0,
    generationMs: timings?.predicted_ms ?? 0,
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Splits an SSE byte stream into the data of its events (`data: …` lines, events separated by a blank line). */
class SseEvents {
  private buffered = "";
  private readonly decoder = new TextDecoder();

  push(bytes: Buffer): string[] {
    this.buffered += this.decoder.decode(bytes, { stream: true });
    const out: string[] = [];
    let end: number;
    while ((end = this.buffered.indexOf("\n\n")) !== -1) {
      const block = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
        .join("\n");
      if (data !== "" && data !== "[DONE]") out.push(data);
    }
    return out;
  }
}
