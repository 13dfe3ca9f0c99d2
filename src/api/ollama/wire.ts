/**
 * Ollama's answer objects for /api/chat and /api/generate: the streamed pieces (`done: false`) and the last
 * object with `done: true`, the done reason, the token counts and the durations in nanoseconds.
 */
import type { ChoiceUsage } from "../../chat/events.js";

export interface OllamaToolCall {
  function: { name: string; arguments: Record<string, unknown> };
}

/** What one streamed object carries. */
export interface OllamaDelta {
  content: string;
  thinking: string;
  toolCalls: OllamaToolCall[];
}

/** Durations in nanoseconds, as Ollama reports them. */
export interface OllamaStats {
  totalNs: number;
  loadNs: number;
  promptNs: number;
  evalNs: number;
}

export type OllamaDoneReason = "stop" | "length" | "load" | "unload";

export type OllamaKind = "chat" | "generate";

/** Ollama's `created_at`: RFC 3339, now. */
const now = () => new Date().toISOString();

export function chatObject(model: string, delta: OllamaDelta) {
  const message: { role: "assistant"; content: string; thinking?: string; tool_calls?: OllamaToolCall[] } = {
    role: "assistant",
    content: delta.content,
  };
  if (delta.thinking) message.thinking = delta.thinking;
  if (delta.toolCalls.length > 0) message.tool_calls = delta.toolCalls;
  return { model, created_at: now(), message, done: false };
}

export function generateObject(model: string, delta: OllamaDelta) {
  return { model, created_at: now(), response: delta.content, ...(delta.thinking ? { thinking: delta.thinking } : {}), done: false };
}

export function pieceObject(kind: OllamaKind, model: string, delta: OllamaDelta) {
  return kind === "chat" ? chatObject(model, delta) : generateObject(model, delta);
}

/** The last object: the (empty or whole) answer with the counts Ollama clients read. */
export function doneObject(kind: OllamaKind, model: string, delta: OllamaDelta, reason: OllamaDoneReason, usage: ChoiceUsage, stats: OllamaStats) {
  return {
    ...pieceObject(kind, model, delta),
    done: true,
    done_reason: reason,
    total_duration: stats.totalNs,
    load_duration: stats.loadNs,
    prompt_eval_count: usage.promptTokens,
    prompt_eval_duration: stats.promptNs,
    eval_count: usage.completionTokens,
    eval_duration: stats.evalNs,
  };
}
