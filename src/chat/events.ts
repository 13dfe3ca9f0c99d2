/**
 * What a chat run produces, choice by choice, whatever dialect writes it (OpenAI chat completions, the Responses
 * API, Anthropic, Ollama): text events from the output parser, with the log-probabilities of the tokens that
 * produced them, then the finish or an error.
 */
import type { LmxError } from "../errors/codes.js";
import type { OutputEvent, ToolOutcome } from "./types.js";

/** One generated token's log-probability and its most likely alternatives (most likely first). */
export interface TokenLogprob {
  text: string;
  logprob: number;
  bytes: number[];
  top: Array<{ text: string; logprob: number; bytes: number[] }>;
}

export type FinishReason = "stop" | "length" | "tool_calls";

export interface ChoiceUsage {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

/** One thing that happened in one choice; `tokens` are the log-probabilities of the text that produced it. */
export type ChoiceEvent =
  | (OutputEvent & { choice: number; tokens?: TokenLogprob[] | undefined })
  | {
      type: "finish";
      choice: number;
      reason: FinishReason;
      /** The stop string that ended the answer (Anthropic's stop_sequence), when one did. */
      stoppingWord?: string | null | undefined;
      outcome: ToolOutcome;
      usage: ChoiceUsage;
      tokens?: TokenLogprob[] | undefined;
    }
  | { type: "error"; choice: number; error: LmxError };
