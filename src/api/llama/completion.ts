/**
 * llama-server's native `POST /completion` as our runners speak it: the documented subset the chat layer sends
 * (one rendered prompt, sampling knobs, stop strings, a GBNF grammar, top-N log-probabilities). Both engines take
 * exactly this body and answer in llama-server's own shapes. Checked by hand, not with zod: runners import it,
 * and they stay free of the gateway's validation library.
 */
import { LmxError } from "../../errors/codes.js";

/** llama-server caps top-N probabilities at what its samplers keep; OpenAI allows 20. */
export const MAX_N_PROBS = 20;
const MAX_STOP_STRINGS = 16;
const MAX_PRESERVED_TOKENS = 256;

export interface RawCompletionBody {
  prompt: string;
  /** Tokens to generate at most; -1 = until the context is full. */
  n_predict: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  stop: string[];
  ignore_eos: boolean;
  /** GBNF; "" = unconstrained. */
  grammar: string;
  n_probs: number;
  /** Special-token texts that come back as text (llama-server renders other special tokens as nothing). */
  preserved_tokens: string[];
  stream: boolean;
  cache_prompt: boolean;
}

/** One generated token with the model's top alternatives (llama-server's `completion_probabilities` entry). */
export interface CompletionProbability {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
  top_logprobs: Array<{ id: number; token: string; bytes: number[]; logprob: number }>;
}

export type StopType = "eos" | "word" | "limit";

export interface CompletionTimings {
  prompt_n: number;
  prompt_ms: number;
  predicted_n: number;
  predicted_ms: number;
  cache_n: number;
}

/** The non-streamed answer, and (with content "" and no probabilities) the last event of a stream. */
export interface CompletionFinal {
  content: string;
  stop: true;
  stop_type: StopType;
  stopping_word: string;
  tokens_predicted: number;
  tokens_evaluated: number;
  tokens_cached: number;
  timings: CompletionTimings;
  completion_probabilities?: CompletionProbability[];
}

/** One streamed token's event. */
export interface CompletionPartial {
  content: string;
  stop: false;
  completion_probabilities?: CompletionProbability[];
}

/** log(0) as llama-server writes it: its JSON library would turn -inf into null. */
export const LOG_ZERO = -3.4028234663852886e38;

export function logarithm(probability: number): number {
  return probability === 0 ? LOG_ZERO : Math.log(probability);
}

const KNOWN = new Set([
  "prompt",
  "n_predict",
  "temperature",
  "top_k",
  "top_p",
  "min_p",
  "seed",
  "presence_penalty",
  "frequency_penalty",
  "stop",
  "ignore_eos",
  "grammar",
  "n_probs",
  "preserved_tokens",
  "stream",
  "cache_prompt",
]);

/** Validates a `/completion` body; the first problem is a 400 naming its field. */
export function parseRawCompletion(body: unknown): RawCompletionBody {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new LmxError("invalid_request", "the request body must be a JSON object");
  }
  const input = body as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!KNOWN.has(key)) throw new LmxError("unknown_parameter", `unrecognized request argument supplied: ${key}`, { param: key });
  }
  const bad = (param: string, why: string) => new LmxError("invalid_value", `invalid value for '${param}': ${why}`, { param });
  const number = (key: string, min: number, max: number, integer = false): number | undefined => {
    const value = input[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      throw bad(key, integer ? "expected an integer" : "expected a number");
    }
    if (value < min || value > max) throw bad(key, `must be between ${min} and ${max}`);
    return value;
  };
  const strings = (key: string, limit: number): string[] => {
    const value = input[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || value.length > limit || !value.every((s) => typeof s === "string" && s.length > 0)) {
      throw bad(key, `expected at most ${limit} non-empty strings`);
    }
    return value as string[];
  };
  const flag = (key: string, fallback: boolean): boolean => {
    const value = input[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "boolean") throw bad(key, "expected a boolean");
    return value;
  };
  const prompt = input["prompt"];
  if (typeof prompt !== "string" || prompt.length === 0) throw bad("prompt", "expected a non-empty string");
  const grammar = input["grammar"] ?? "";
  if (typeof grammar !== "string") throw bad("grammar", "expected a GBNF text");
  const nPredict = number("n_predict", -1, Number.MAX_SAFE_INTEGER, true) ?? -1;
  if (nPredict === 0) throw bad("n_predict", "must be -1 (until the context is full) or at least 1");
  const out: RawCompletionBody = {
    prompt,
    n_predict: nPredict,
    stop: strings("stop", MAX_STOP_STRINGS),
    ignore_eos: flag("ignore_eos", false),
    grammar,
    n_probs: number("n_probs", 0, MAX_N_PROBS, true) ?? 0,
    preserved_tokens: strings("preserved_tokens", MAX_PRESERVED_TOKENS),
    stream: flag("stream", false),
    cache_prompt: flag("cache_prompt", true),
  };
  const optional = [
    ["temperature", number("temperature", 0, 2)],
    ["top_k", number("top_k", 0, Number.MAX_SAFE_INTEGER, true)],
    ["top_p", number("top_p", 0, 1)],
    ["min_p", number("min_p", 0, 1)],
    ["seed", number("seed", -1, 0xffffffff, true)],
    ["presence_penalty", number("presence_penalty", -2, 2)],
    ["frequency_penalty", number("frequency_penalty", -2, 2)],
  ] as const;
  for (const [key, value] of optional) if (value !== undefined) out[key] = value;
  return out;
}
