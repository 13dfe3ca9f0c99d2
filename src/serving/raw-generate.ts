/** INTERFACE STUB — the raw generation client is implemented in its own change. */
import type { RunnerHandle } from "../engines/backend.js";

export interface RawGenerateRequest {
  prompt: string;
  maxTokens: number | null;
  temperature?: number | null;
  topP?: number | null;
  topK?: number | null;
  minP?: number | null;
  seed?: number | null;
  presencePenalty?: number | null;
  frequencyPenalty?: number | null;
  stop: string[];
  grammar: string | null;
  nProbs: number;
  preservedTokens: string[];
  ignoreEos?: boolean;
}
export interface RawToken {
  text: string;
  logprob: number;
  bytes: number[];
  top: Array<{ text: string; logprob: number; bytes: number[] }>;
}
export type RawChunk =
  | { type: "text"; text: string; tokens: RawToken[] }
  | {
      type: "done";
      finishReason: "stop" | "length";
      promptTokens: number;
      cachedTokens: number;
      completionTokens: number;
      promptMs: number;
      generationMs: number;
    };
export function rawGenerate(
  _runner: RunnerHandle,
  _request: RawGenerateRequest,
  _signal: AbortSignal,
  _headers?: Record<string, string>,
): AsyncIterable<RawChunk> {
  throw new Error("not implemented");
}
