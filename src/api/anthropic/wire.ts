/**
 * Anthropic's Messages wire shapes, built from the chat layer's events: the whole message (content blocks text
 * and tool_use, stop_reason, usage) and the streamed event sequence as Anthropic sends it — message_start,
 * content_block_start, ping, content_block_delta (text_delta / input_json_delta), content_block_stop, ...,
 * message_delta (stop_reason, usage), message_stop.
 *
 * Reasoning a thinking model writes is not sent: Anthropic only answers with thinking blocks when asked for
 * extended thinking, which is refused here (src/api/anthropic/schemas.ts).
 */
import type { ChoiceEvent, ChoiceUsage, FinishReason } from "../../serving/chat.js";

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use";

export type ContentBlock = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface MessageMeta {
  id: string;
  model: string;
}

/**
 * Anthropic counts a prompt in parts: `input_tokens` were evaluated, `cache_read_input_tokens` came from the
 * prompt cache; their sum is the prompt (OpenAI's prompt_tokens, and what count_tokens answers).
 */
export function anthropicUsage(usage: ChoiceUsage): AnthropicUsage {
  const cached = Math.min(usage.cachedTokens, usage.promptTokens);
  return {
    input_tokens: usage.promptTokens - cached,
    output_tokens: usage.completionTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

/** Why the answer ended, in Anthropic's words; a stop string counts only when it is one of the client's. */
export function stopOf(
  reason: FinishReason,
  stoppingWord: string | null | undefined,
  stopSequences: readonly string[],
): { stop_reason: StopReason; stop_sequence: string | null } {
  if (reason === "length") return { stop_reason: "max_tokens", stop_sequence: null };
  if (reason === "tool_calls") return { stop_reason: "tool_use", stop_sequence: null };
  if (stoppingWord && stopSequences.includes(stoppingWord)) return { stop_reason: "stop_sequence", stop_sequence: stoppingWord };
  return { stop_reason: "end_turn", stop_sequence: null };
}

/** Anthropic's tool_use ids start with toolu_; the chat layer's call ids with call_. */
export function toolUseId(callId: string): string {
  return callId.startsWith("call_") ? `toolu_${callId.slice(5)}` : callId;
}

/** Arguments text the parser produced as a JSON object (a parsed or forced call); anything else is kept as text. */
function inputOf(argumentsText: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(argumentsText);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { arguments: argumentsText };
}

/** Collects one answer's events into content blocks, in the order they were written. */
export class MessageAssembler {
  private readonly items: Array<{ type: "text"; text: string } | { type: "tool_use"; id: string; name: string; args: string }> = [];
  private readonly tools = new Map<number, { args: string }>();

  add(event: ChoiceEvent): void {
    switch (event.type) {
      case "content": {
        if (event.text === "") return;
        const last = this.items.at(-1);
        if (last?.type === "text") last.text += event.text;
        else this.items.push({ type: "text", text: event.text });
        return;
      }
      case "tool_call_start": {
        const item = { type: "tool_use" as const, id: toolUseId(event.id), name: event.name, args: "" };
        this.items.push(item);
        this.tools.set(event.index, item);
        return;
      }
      case "tool_call_arguments": {
        const tool = this.tools.get(event.index);
        if (tool) tool.args += event.text;
        return;
      }
      default:
        return;
    }
  }

  blocks(): ContentBlock[] {
    return this.items.map((item) =>
      item.type === "text" ? item : { type: "tool_use", id: item.id, name: item.name, input: item.args.trim() === "" ? {} : inputOf(item.args) },
    );
  }
}

export function messageBody(meta: MessageMeta, content: ContentBlock[], stop: ReturnType<typeof stopOf>, usage: AnthropicUsage) {
  return { id: meta.id, type: "message", role: "assistant", model: meta.model, content, ...stop, usage };
}

function sse(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/**
 * Turns one answer's events into Anthropic's stream events, one SSE text per call. The prompt's token count is
 * only known when the generation ends: message_start carries zeros and message_delta the whole usage (input and
 * cache counts included, which Anthropic's SDKs take from message_delta when present).
 */
export class MessageStreamEncoder {
  private index = -1;
  private open: "text" | "tool_use" | null = null;
  private pinged = false;
  /** The chat layer's call index → its block index. */
  private readonly toolBlocks = new Map<number, number>();

  constructor(private readonly meta: MessageMeta) {}

  start(): string {
    const usage: AnthropicUsage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    const message = {
      id: this.meta.id,
      type: "message",
      role: "assistant",
      model: this.meta.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage,
    };
    return sse("message_start", { message });
  }

  /** The events for one chat-layer event (nothing for reasoning, finish and errors: see `end`). */
  event(event: ChoiceEvent): string {
    switch (event.type) {
      case "content":
        if (event.text === "") return "";
        return (
          (this.open === "text" ? "" : this.openBlock({ type: "text", text: "" })) + this.delta(this.index, { type: "text_delta", text: event.text })
        );
      case "tool_call_start": {
        const out = this.openBlock({ type: "tool_use", id: toolUseId(event.id), name: event.name, input: {} });
        this.toolBlocks.set(event.index, this.index);
        return out;
      }
      case "tool_call_arguments": {
        const block = this.toolBlocks.get(event.index);
        if (block === undefined || event.text === "") return "";
        return this.delta(block, { type: "input_json_delta", partial_json: event.text });
      }
      default:
        return "";
    }
  }

  /** Closes the last block and ends the message with its stop reason and usage. */
  end(stop: ReturnType<typeof stopOf>, usage: AnthropicUsage): string {
    return this.closeBlock() + this.ping() + sse("message_delta", { delta: stop, usage }) + sse("message_stop", {});
  }

  private openBlock(block: ContentBlock): string {
    const close = this.closeBlock();
    this.index++;
    this.open = block.type;
    // Anthropic pings once the first block is open
    return close + sse("content_block_start", { index: this.index, content_block: block }) + this.ping();
  }

  private closeBlock(): string {
    if (this.open === null) return "";
    this.open = null;
    return sse("content_block_stop", { index: this.index });
  }

  private ping(): string {
    if (this.pinged) return "";
    this.pinged = true;
    return sse("ping", {});
  }

  private delta(index: number, delta: Record<string, unknown>): string {
    return sse("content_block_delta", { index, delta });
  }
}
