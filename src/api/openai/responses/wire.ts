/**
 * The Response object and its stream events, built from the chat layer's events. One assembler serves both
 * answers: a streamed one writes the events it returns, a whole one only reads `response()` at the end. Items
 * open as their first text arrives and close when another begins or the answer ends, so the events always
 * replay (OpenAI's SDK accumulates them) into the very Response `response()` returns.
 */
import type { LmxError } from "../../../errors/codes.js";
import type { ChoiceEvent, ChoiceUsage, FinishReason } from "../../../chat/events.js";
import { newItemId, type FunctionCallItem, type ItemStatus, type MessageItem, type ReasoningItem, type ResponseItem } from "./items.js";
import type { ResponseCreateRequest } from "./schema.js";

export type ResponseStatus = "in_progress" | "completed" | "incomplete" | "failed";

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export interface ResponseObject {
  id: string;
  object: "response";
  created_at: number;
  completed_at: number | null;
  status: ResponseStatus;
  background: false;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: "max_output_tokens" } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: ResponseItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: { effort: string | null; summary: string | null };
  store: boolean;
  temperature: number | null;
  text: { format: NonNullable<NonNullable<ResponseCreateRequest["text"]>["format"]> };
  tool_choice: NonNullable<ResponseCreateRequest["tool_choice"]>;
  tools: Array<{ type: "function"; name: string; description: string | null; parameters: Record<string, unknown> | null; strict: boolean }>;
  top_p: number | null;
  truncation: "disabled";
  usage: ResponseUsage | null;
  user: string | null;
  metadata: Record<string, string>;
  service_tier: string;
  safety_identifier: string | null;
  prompt_cache_key: string | null;
}

/** One stream event, without its sequence_number (the writer numbers them). */
export type ResponseStreamEvent = { type: string } & Record<string, unknown>;

/** The Response as created: in progress, nothing in it yet. */
export function initialResponse(id: string, model: string, body: ResponseCreateRequest, createdAt: number): ResponseObject {
  return {
    id,
    object: "response",
    created_at: createdAt,
    completed_at: null,
    status: "in_progress",
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store: body.store !== false,
    temperature: body.temperature ?? null,
    text: { format: body.text?.format ?? { type: "text" } },
    tool_choice: body.tool_choice ?? "auto",
    tools: (body.tools ?? []).map((tool) => ({
      type: "function",
      name: tool.name,
      description: tool.description ?? null,
      parameters: tool.parameters ?? null,
      strict: tool.strict ?? true,
    })),
    top_p: body.top_p ?? null,
    truncation: "disabled",
    usage: null,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
    service_tier: "default",
    safety_identifier: body.safety_identifier ?? null,
    prompt_cache_key: body.prompt_cache_key ?? null,
  };
}

export function responseUsage(usage: ChoiceUsage): ResponseUsage {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: usage.cachedTokens },
    output_tokens: usage.completionTokens,
    // the runner counts generated tokens, not which of them were reasoning: 0 rather than a guess
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

type OpenItem =
  | { kind: "message"; index: number; item: MessageItem; text: string }
  | { kind: "reasoning"; index: number; item: ReasoningItem; text: string }
  | { kind: "call"; index: number; item: FunctionCallItem };

export class ResponseAssembler {
  private readonly output: ResponseItem[] = [];
  /** The message or reasoning item taking text now. */
  private current: Extract<OpenItem, { kind: "message" | "reasoning" }> | null = null;
  /** Function calls stay open until the end: a parser may write a call's arguments after another call began. */
  private readonly calls = new Map<number, Extract<OpenItem, { kind: "call" }>>();
  /** Whitespace before anything else is said waits: beside tool calls it is no message at all. */
  private heldWhitespace = "";
  private finishReason: FinishReason | null = null;
  private usage: ChoiceUsage | null = null;
  private failure: LmxError | null = null;

  constructor(private readonly base: ResponseObject) {}

  /** response.created and response.in_progress. */
  start(): ResponseStreamEvent[] {
    const snapshot = this.snapshot();
    return [
      { type: "response.created", response: snapshot },
      { type: "response.in_progress", response: snapshot },
    ];
  }

  add(event: ChoiceEvent): ResponseStreamEvent[] {
    if (event.choice !== 0) return [];
    switch (event.type) {
      case "content":
        return this.text("message", event.text);
      case "reasoning":
        return this.text("reasoning", event.text);
      case "tool_call_start": {
        const events = this.closeCurrent("completed");
        this.heldWhitespace = "";
        const item: FunctionCallItem = {
          type: "function_call",
          id: newItemId("fc"),
          call_id: event.id,
          name: event.name,
          arguments: "",
          status: "in_progress",
        };
        const index = this.output.push(item) - 1;
        this.calls.set(event.index, { kind: "call", index, item });
        events.push({ type: "response.output_item.added", output_index: index, item: { ...item } });
        return events;
      }
      case "tool_call_arguments": {
        const call = this.calls.get(event.index);
        if (!call) return [];
        call.item.arguments += event.text;
        return [{ type: "response.function_call_arguments.delta", item_id: call.item.id, output_index: call.index, delta: event.text }];
      }
      case "finish":
        this.finishReason = event.reason;
        this.usage = event.usage;
        return [];
      case "error":
        this.failure ??= event.error;
        return [];
    }
  }

  /** Closes every item and ends the answer: response.completed, .incomplete or .failed. */
  finish(): ResponseStreamEvent[] {
    const itemStatus: ItemStatus = this.failure || this.finishReason === "length" ? "incomplete" : "completed";
    const events: ResponseStreamEvent[] = [];
    if (!this.failure && this.calls.size === 0 && !this.output.some((item) => item.type === "message")) {
      // an answer without calls always has its message, empty or only whitespace as it may be
      if (this.heldWhitespace !== "" || this.current === null) {
        events.push(...this.closeCurrent(itemStatus), ...this.open("message"), ...this.delta(this.heldWhitespace));
        this.heldWhitespace = "";
      }
    }
    events.push(...this.closeCurrent(itemStatus));
    for (const call of this.calls.values()) {
      call.item.status = itemStatus;
      events.push(
        {
          type: "response.function_call_arguments.done",
          item_id: call.item.id,
          output_index: call.index,
          name: call.item.name,
          arguments: call.item.arguments,
        },
        { type: "response.output_item.done", output_index: call.index, item: { ...call.item } },
      );
    }
    this.calls.clear();
    const response = this.response();
    const type = this.failure ? "response.failed" : response.status === "incomplete" ? "response.incomplete" : "response.completed";
    events.push({ type, response });
    if (this.failure) {
      events.push({ type: "error", code: this.failure.code, message: this.failure.message, param: this.failure.param });
    }
    return events;
  }

  get failed(): LmxError | null {
    return this.failure;
  }

  /** The Response as it stands: final once finish() ran. */
  response(): ResponseObject {
    const done = this.finishReason !== null || this.failure !== null;
    const status: ResponseStatus = this.failure
      ? "failed"
      : this.finishReason === null
        ? "in_progress"
        : this.finishReason === "length"
          ? "incomplete"
          : "completed";
    return {
      ...this.snapshot(),
      status,
      completed_at: done && !this.failure ? Math.floor(Date.now() / 1000) : null,
      error: this.failure ? { code: "server_error", message: this.failure.message } : null,
      incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
      usage: this.usage ? responseUsage(this.usage) : null,
    };
  }

  private snapshot(): ResponseObject {
    return { ...this.base, output: this.output.map((item) => structuredClone(item)) };
  }

  private text(kind: "message" | "reasoning", text: string): ResponseStreamEvent[] {
    if (text === "") return [];
    if (kind === "message" && this.current?.kind !== "message") {
      // nothing said yet in this message: whitespace waits for words
      if (text.trim() === "") {
        this.heldWhitespace += text;
        return [];
      }
      text = this.heldWhitespace + text;
      this.heldWhitespace = "";
    }
    const events = this.current?.kind === kind ? [] : [...this.closeCurrent("completed"), ...this.open(kind)];
    events.push(...this.delta(text));
    return events;
  }

  private open(kind: "message" | "reasoning"): ResponseStreamEvent[] {
    const index = this.output.length;
    if (kind === "message") {
      const item: MessageItem = { type: "message", id: newItemId("msg"), role: "assistant", status: "in_progress", content: [] };
      this.output.push(item);
      this.current = { kind, index, item, text: "" };
      return [
        { type: "response.output_item.added", output_index: index, item: structuredClone(item) },
        {
          type: "response.content_part.added",
          item_id: item.id,
          output_index: index,
          content_index: 0,
          part: { type: "output_text", text: "", annotations: [], logprobs: [] },
        },
      ];
    }
    const item: ReasoningItem = { type: "reasoning", id: newItemId("rs"), summary: [], content: [], status: "in_progress" };
    this.output.push(item);
    this.current = { kind, index, item, text: "" };
    return [
      { type: "response.output_item.added", output_index: index, item: structuredClone(item) },
      {
        type: "response.content_part.added",
        item_id: item.id,
        output_index: index,
        content_index: 0,
        part: { type: "reasoning_text", text: "" },
      },
    ];
  }

  private delta(text: string): ResponseStreamEvent[] {
    const current = this.current;
    if (!current || text === "") return [];
    current.text += text;
    const where = { item_id: current.item.id, output_index: current.index, content_index: 0 };
    return current.kind === "message"
      ? [{ type: "response.output_text.delta", ...where, delta: text, logprobs: [] }]
      : [{ type: "response.reasoning_text.delta", ...where, delta: text }];
  }

  private closeCurrent(status: ItemStatus): ResponseStreamEvent[] {
    const current = this.current;
    if (!current) return [];
    this.current = null;
    const where = { item_id: current.item.id, output_index: current.index, content_index: 0 };
    current.item.status = status;
    if (current.kind === "message") {
      const part = { type: "output_text" as const, text: current.text, annotations: [] };
      current.item.content = [part];
      return [
        { type: "response.output_text.done", ...where, text: current.text, logprobs: [] },
        { type: "response.content_part.done", ...where, part: { ...part, logprobs: [] } },
        { type: "response.output_item.done", output_index: current.index, item: structuredClone(current.item) },
      ];
    }
    const part = { type: "reasoning_text" as const, text: current.text };
    current.item.content = [part];
    return [
      { type: "response.reasoning_text.done", ...where, text: current.text },
      { type: "response.content_part.done", ...where, part },
      { type: "response.output_item.done", output_index: current.index, item: structuredClone(current.item) },
    ];
  }
}
