/**
 * The Responses API's conversation items as this server keeps them: every item with an id and text-only content.
 * A request's input is normalized to these before it is stored; an answer's output is made of them.
 */
import { randomBytes } from "node:crypto";
import type { ResponseCreateRequest } from "./schema.js";

export type ItemStatus = "in_progress" | "completed" | "incomplete";

export type MessageContentPart =
  { type: "input_text"; text: string } | { type: "output_text"; text: string; annotations: unknown[] } | { type: "refusal"; refusal: string };

export interface MessageItem {
  type: "message";
  id: string;
  role: "user" | "system" | "developer" | "assistant";
  status: ItemStatus;
  content: MessageContentPart[];
}

export interface FunctionCallItem {
  type: "function_call";
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

export interface FunctionCallOutputItem {
  type: "function_call_output";
  id: string;
  call_id: string;
  output: string;
  status: ItemStatus;
}

export interface ReasoningItem {
  type: "reasoning";
  id: string;
  summary: Array<{ type: "summary_text"; text: string }>;
  content: Array<{ type: "reasoning_text"; text: string }>;
  status?: ItemStatus;
}

export type ResponseItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem;

/** OpenAI's id shapes: a prefix and 48 hex digits. */
export function newItemId(prefix: "resp" | "msg" | "fc" | "fco" | "rs"): string {
  return `${prefix}_${randomBytes(24).toString("hex")}`;
}

/** The request's input as stored items, in order; a string is one user message. */
export function normalizeInput(input: ResponseCreateRequest["input"]): ResponseItem[] {
  if (typeof input === "string") {
    return [{ type: "message", id: newItemId("msg"), role: "user", status: "completed", content: [{ type: "input_text", text: input }] }];
  }
  return input.map((item): ResponseItem => {
    switch (item.type) {
      case "message": {
        const textType = item.role === "assistant" ? "output_text" : "input_text";
        const content: MessageContentPart[] =
          typeof item.content === "string"
            ? [textType === "output_text" ? { type: textType, text: item.content, annotations: [] } : { type: textType, text: item.content }]
            : item.content.map((part): MessageContentPart => {
                if (part.type === "output_text") return { type: "output_text", text: part.text, annotations: part.annotations ?? [] };
                return part;
              });
        return { type: "message", id: item.id ?? newItemId("msg"), role: item.role, status: item.status ?? "completed", content };
      }
      case "function_call":
        return {
          type: "function_call",
          id: item.id ?? newItemId("fc"),
          call_id: item.call_id,
          name: item.name,
          arguments: item.arguments,
          status: item.status ?? "completed",
        };
      case "function_call_output":
        return {
          type: "function_call_output",
          id: item.id ?? newItemId("fco"),
          call_id: item.call_id,
          output: typeof item.output === "string" ? item.output : item.output.map((part) => part.text).join(""),
          status: item.status ?? "completed",
        };
      case "reasoning":
        return {
          type: "reasoning",
          id: item.id ?? newItemId("rs"),
          summary: item.summary,
          content: item.content ?? [],
          ...(item.status ? { status: item.status } : {}),
        };
    }
  });
}

export function messageItemText(item: MessageItem): string {
  return item.content.map((part) => (part.type === "refusal" ? part.refusal : part.text)).join("");
}
