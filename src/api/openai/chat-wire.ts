/**
 * OpenAI's chat completion wire shapes, built from the chat layer's events: the streamed chunks (role first,
 * then content / reasoning_content / tool_calls deltas, then the finish) and the whole answer.
 */
import type { ChoiceEvent, ChoiceUsage, FinishReason, TokenLogprob } from "../../chat/events.js";

export interface ChatAnswerMeta {
  id: string;
  model: string;
  created: number;
  /** top_logprobs asked for, or null when logprobs were not. */
  topLogprobs: number | null;
}

export interface OpenAiTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export function openAiLogprobs(tokens: TokenLogprob[] | undefined, top: number): OpenAiTokenLogprob[] {
  return (tokens ?? []).map((token) => ({
    token: token.text,
    logprob: token.logprob,
    bytes: token.bytes,
    top_logprobs: token.top.slice(0, top).map((alt: TokenLogprob["top"][number]) => ({ token: alt.text, logprob: alt.logprob, bytes: alt.bytes })),
  }));
}

export function openAiUsage(usage: ChoiceUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}

/** Usage of a request with several choices: the prompt once, every choice's completion. */
export function sumUsage(usages: ChoiceUsage[]): ChoiceUsage {
  const first = usages[0] ?? { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
  return {
    promptTokens: first.promptTokens,
    cachedTokens: first.cachedTokens,
    completionTokens: usages.reduce((sum, u) => sum + u.completionTokens, 0),
  };
}

/** The streamed chunk for one event (null for events that are not chunks: errors are written by the caller). */
export function chunkFor(meta: ChatAnswerMeta, event: ChoiceEvent): Record<string, unknown> | null {
  let delta: Record<string, unknown>;
  let finish: FinishReason | null = null;
  switch (event.type) {
    case "content":
      delta = { content: event.text };
      break;
    case "reasoning":
      delta = { reasoning_content: event.text };
      break;
    case "tool_call_start":
      delta = { tool_calls: [{ index: event.index, id: event.id, type: "function", function: { name: event.name, arguments: "" } }] };
      break;
    case "tool_call_arguments":
      delta = { tool_calls: [{ index: event.index, function: { arguments: event.text } }] };
      break;
    case "finish":
      delta = {};
      finish = event.reason;
      break;
    case "error":
      return null;
  }
  const logprobs = meta.topLogprobs === null ? null : { content: openAiLogprobs(event.tokens, meta.topLogprobs), refusal: null };
  return chunk(meta, [{ index: event.choice, delta, logprobs, finish_reason: finish }]);
}

export function roleChunk(meta: ChatAnswerMeta, choice: number): Record<string, unknown> {
  return chunk(meta, [{ index: choice, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
}

export function usageChunk(meta: ChatAnswerMeta, usage: ChoiceUsage): Record<string, unknown> {
  return { ...chunk(meta, []), usage: openAiUsage(usage) };
}

function chunk(meta: ChatAnswerMeta, choices: unknown[]): Record<string, unknown> {
  return { id: meta.id, object: "chat.completion.chunk", created: meta.created, model: meta.model, system_fingerprint: null, choices };
}

/** Collects a choice's events into OpenAI's `choices[i]` of a whole (non-streamed) answer. */
export class ChoiceCollector {
  private content = "";
  private reasoning = "";
  private readonly calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> = [];
  private readonly tokens: TokenLogprob[] = [];
  finish: FinishReason | null = null;
  usage: ChoiceUsage | null = null;

  constructor(private readonly index: number) {}

  add(event: ChoiceEvent): void {
    if (event.type === "error") return;
    if (event.tokens) this.tokens.push(...event.tokens);
    switch (event.type) {
      case "content":
        this.content += event.text;
        break;
      case "reasoning":
        this.reasoning += event.text;
        break;
      case "tool_call_start":
        this.calls[event.index] = { id: event.id, type: "function", function: { name: event.name, arguments: "" } };
        break;
      case "tool_call_arguments": {
        const call = this.calls[event.index];
        if (call) call.function.arguments += event.text;
        break;
      }
      case "finish":
        this.finish = event.reason;
        this.usage = event.usage;
        break;
    }
  }

  toChoice(topLogprobs: number | null): Record<string, unknown> {
    const message: Record<string, unknown> = {
      role: "assistant",
      // OpenAI sends null content beside tool calls when the model said nothing else
      content: this.calls.length > 0 && this.content.trim() === "" ? null : this.content,
      refusal: null,
    };
    if (this.reasoning) message["reasoning_content"] = this.reasoning;
    if (this.calls.length > 0) message["tool_calls"] = this.calls.filter(Boolean);
    return {
      index: this.index,
      message,
      logprobs: topLogprobs === null ? null : { content: openAiLogprobs(this.tokens, topLogprobs), refusal: null },
      finish_reason: this.finish ?? "stop",
    };
  }
}
