/**
 * The chat layer sends one raw generation in llama-server's `/completion` dialect (src/serving/raw-generate.ts).
 * Servers that speak only OpenAI's API (mlx_lm.server, vllm-mlx, vLLM, any OpenAI-compatible command) get it as a
 * streamed `/v1/completions` request, and their answer comes back as `/completion` events: text pieces with
 * their log-probabilities, then one final event with the finish reason and token counts.
 */
import { Transform, type TransformCallback } from "node:stream";
import type { RawCompletionBody, CompletionFinal, CompletionPartial, CompletionProbability, StopType } from "../../api/llama/completion.js";
import { LmxError } from "../../errors/codes.js";

/** How a server takes what the OpenAI API has no field for. */
export interface DialectOptions {
  /** The `model` field the server expects; null leaves it out (mlx_lm.server would load another model by name). */
  model: string | null;
  /** Where a GBNF grammar goes; null: the server has none and a grammar is refused. */
  grammarField: "grammar" | "guided_grammar" | null;
  /** Whether `ignore_eos`, `top_k`, `min_p` and `skip_special_tokens` are understood (vLLM, llama-server). */
  extendedSampling: boolean;
  /** max_tokens for "until the context is full": servers default to a small number (mlx_lm.server: 512). */
  contextSize: number;
  serverName: string;
}

/** A `/completion` body as a streamed `/v1/completions` body. */
export function toOpenAiCompletion(raw: RawCompletionBody, options: DialectOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {
    prompt: raw.prompt,
    max_tokens: raw.n_predict > 0 ? raw.n_predict : options.contextSize,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (options.model !== null) out["model"] = options.model;
  for (const key of ["temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"] as const) {
    if (raw[key] !== undefined) out[key] = raw[key];
  }
  if (raw.stop.length > 0) out["stop"] = raw.stop;
  if (raw.n_probs > 0) out["logprobs"] = raw.n_probs;
  if (raw.grammar !== "") {
    if (options.grammarField === null) {
      throw new LmxError(
        "unsupported_parameter",
        `${options.serverName} cannot constrain output with a grammar (response_format, tools with a schema); serve this model with a llama.cpp engine for that`,
        { param: "response_format" },
      );
    }
    out[options.grammarField] = raw.grammar;
  }
  if (options.extendedSampling) {
    if (raw.top_k !== undefined) out["top_k"] = raw.top_k;
    if (raw.min_p !== undefined) out["min_p"] = raw.min_p;
    if (raw.ignore_eos) out["ignore_eos"] = true;
    // the chat layer parses marker tokens (tool calls, thinking) out of the text: they must be in it
    if (raw.preserved_tokens.length > 0) out["skip_special_tokens"] = false;
  } else if (raw.ignore_eos) {
    throw new LmxError("unsupported_parameter", `${options.serverName} has no ignore_eos`, { param: "ignore_eos" });
  }
  return out;
}

interface OpenAiLogprobs {
  tokens?: string[];
  token_logprobs?: Array<number | null>;
  top_logprobs?: Array<Record<string, number> | null> | null;
  /** The chat API's shape, which llama-server also uses for completions. */
  content?: Array<{
    token: string;
    logprob: number;
    bytes?: number[] | null;
    top_logprobs?: Array<{ token: string; logprob: number; bytes?: number[] | null }>;
  }>;
}

interface OpenAiChunk {
  choices?: Array<{ text?: string; finish_reason?: string | null; stop_reason?: string | number | null; logprobs?: OpenAiLogprobs | null }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

function probabilities(logprobs: OpenAiLogprobs | null | undefined): CompletionProbability[] {
  const bytesOf = (text: string, bytes: number[] | null | undefined) => bytes ?? [...Buffer.from(text, "utf8")];
  if (Array.isArray(logprobs?.content)) {
    return logprobs.content.map((entry) => ({
      id: -1,
      token: entry.token,
      bytes: bytesOf(entry.token, entry.bytes),
      logprob: entry.logprob,
      top_logprobs: (entry.top_logprobs ?? []).map((top) => ({
        id: -1,
        token: top.token,
        bytes: bytesOf(top.token, top.bytes),
        logprob: top.logprob,
      })),
    }));
  }
  const tokens = logprobs?.tokens ?? [];
  return tokens.map((token, i) => ({
    id: -1,
    token,
    bytes: [...Buffer.from(token, "utf8")],
    // a server that sends null for a token's logprob (OpenAI's first-token quirk) says nothing: not finite
    logprob: logprobs?.token_logprobs?.[i] ?? Number.NaN,
    top_logprobs: Object.entries(logprobs?.top_logprobs?.[i] ?? {}).map(([text, logprob]) => ({
      id: -1,
      token: text,
      bytes: [...Buffer.from(text, "utf8")],
      logprob,
    })),
  }));
}

/**
 * Rewrites a streamed `/v1/completions` answer (SSE) into `/completion` events as it arrives. The final event is
 * written when the server ends its stream (`[DONE]`, or the end of the body after a finish reason).
 */
export class CompletionStreamTranslator extends Transform {
  private buffered = "";
  private readonly decoder = new TextDecoder();
  private finish: { type: StopType; word: string } | null = null;
  private usage: { prompt: number; completion: number } | null = null;
  private pieces = 0;
  private ended = false;
  private readonly started = performance.now();

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.buffered += this.decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = this.buffered.search(/\r?\n\r?\n/)) !== -1) {
      const block = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data !== "") this.event(data);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    // a stream cut before any finish reason is not a finished answer: the reader reports the crash
    if (!this.ended && this.finish) this.final();
    callback();
  }

  private event(data: string): void {
    if (this.ended) return;
    if (data === "[DONE]") {
      if (this.finish) this.final();
      return;
    }
    let chunk: OpenAiChunk;
    try {
      chunk = JSON.parse(data) as OpenAiChunk;
    } catch {
      this.push(`data: ${JSON.stringify({ error: { message: `unreadable event from the server: ${data.slice(0, 200)}` } })}\n\n`);
      this.ended = true;
      return;
    }
    if (chunk.error !== undefined) {
      this.push(`data: ${JSON.stringify({ error: chunk.error })}\n\n`);
      this.ended = true;
      return;
    }
    if (chunk.usage) this.usage = { prompt: chunk.usage.prompt_tokens ?? 0, completion: chunk.usage.completion_tokens ?? 0 };
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const probs = probabilities(choice.logprobs);
    if ((choice.text ?? "") !== "" || probs.length > 0) {
      this.pieces += Math.max(1, probs.length);
      const partial: CompletionPartial = { content: choice.text ?? "", stop: false };
      if (probs.length > 0) partial.completion_probabilities = probs;
      this.push(`data: ${JSON.stringify(partial)}\n\n`);
    }
    if (choice.finish_reason) {
      const word = typeof choice.stop_reason === "string" ? choice.stop_reason : "";
      this.finish = { type: choice.finish_reason === "length" ? "limit" : word !== "" ? "word" : "eos", word };
    }
  }

  private final(): void {
    this.ended = true;
    const ms = performance.now() - this.started;
    const predicted = this.usage?.completion ?? this.pieces;
    const final: CompletionFinal = {
      content: "",
      stop: true,
      stop_type: this.finish!.type,
      stopping_word: this.finish!.word,
      tokens_predicted: predicted,
      tokens_evaluated: this.usage?.prompt ?? 0,
      tokens_cached: 0,
      // the server reports no split between prompt and generation time: all of it counts as generation
      timings: { prompt_n: this.usage?.prompt ?? 0, prompt_ms: 0, predicted_n: predicted, predicted_ms: ms, cache_n: 0 },
    };
    this.push(`data: ${JSON.stringify(final)}\n\n`);
  }
}
