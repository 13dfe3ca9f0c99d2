/**
 * Renders a conversation into the model's prompt with its own Jinja chat template (@huggingface/jinja), the way
 * Hugging Face's `apply_chat_template` does: messages and tools in HF's shape, `add_generation_prompt`, the
 * model's BOS/EOS texts. Templates with no tool syntax (the generic family) get the tools described in the
 * system message and tool turns rewritten into plain text in our generic syntax.
 */
import { createHash } from "node:crypto";
import { Template } from "@huggingface/jinja";
import { LmxError } from "../../errors/codes.js";
import type { ChatTurn, TemplateInfo, ToolCallRecord, ToolDefinition } from "../types.js";
import { detectFamily } from "./family.js";

/** The template used when the model file has none: plain ChatML. */
export const FALLBACK_CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * What the generic family puts in the system message before the tool list (one JSON object per line:
 * `{"name": …, "description": …, "parameters": …}`). The call syntax it teaches is the one the generic parser reads.
 */
export const GENERIC_TOOL_INSTRUCTIONS =
  "# Tools\n\n" +
  "You can call the functions listed below. To call one, write exactly " +
  '<tool_call>{"name": "<function name>", "arguments": <JSON object of arguments>}</tool_call> ' +
  "(one tag per call, nothing else inside it). Each result comes back in a " +
  '<tool_response>{"tool_call_id": …, "name": …, "content": …}</tool_response> message.\n\n' +
  "Functions:";

export interface RenderOptions {
  /**
   * For templates with no tool syntax: describe the tools in the system message (GENERIC_TOOL_INSTRUCTIONS).
   * Default true; false renders the conversation without them (past tool turns are still rewritten as text).
   */
  genericToolInstructions?: boolean;
  /** The request's reasoning_effort, for templates that read `reasoning_effort` (gpt-oss's Harmony). */
  reasoningEffort?: string | null;
}

/** A message as HF chat templates read it. */
interface HfMessage {
  role: string;
  content: string | null;
  tool_calls?: HfToolCall[];
  tool_call_id?: string;
  name?: string;
  reasoning_content?: string;
}

interface HfToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: unknown };
}

interface HfTool {
  type: "function";
  function: { name: string; description?: string; parameters: unknown };
}

/** The prompt for `turns` (with the assistant's generation prompt), as the model's template renders it. */
export function renderPrompt(
  info: TemplateInfo,
  turns: readonly ChatTurn[],
  tools: readonly ToolDefinition[] | null,
  opts: RenderOptions = {},
): string {
  const source = info.jinja ?? FALLBACK_CHATML_TEMPLATE;
  const { family } = detectFamily(info.jinja);
  const toolList = tools && tools.length > 0 ? tools : null;
  let messages = toHfMessages(turns);
  let hfTools: HfTool[] | undefined;
  if (family === "generic") {
    messages = textualizeToolTurns(messages);
    if (toolList && opts.genericToolInstructions !== false) messages = withSystemText(messages, genericToolPrompt(toolList));
  } else {
    if (family === "mistral") messages = withMistralIds(messages);
    if (toolList) hfTools = toolList.map(toHfTool);
  }
  const template = parseTemplate(source);
  const context = {
    messages,
    ...(hfTools ? { tools: hfTools } : {}),
    add_generation_prompt: true,
    bos_token: info.bosToken ?? "",
    eos_token: info.eosToken ?? "",
    ...(opts.reasoningEffort ? { reasoning_effort: opts.reasoningEffort } : {}),
    // raise_exception and strftime_now are @huggingface/jinja built-ins (redefining them throws).
  };
  let prompt: string;
  try {
    prompt = template.render(context);
  } catch (first) {
    // Templates that refuse a system role (they raise on it): the system text goes into the first user turn.
    const merged = mergeSystemIntoFirstUser(messages);
    if (merged === null) throw templateFailure(first);
    try {
      prompt = template.render({ ...context, messages: merged });
    } catch {
      throw templateFailure(first);
    }
  }
  if (info.addsBos && info.bosToken && prompt.startsWith(info.bosToken)) prompt = prompt.slice(info.bosToken.length);
  return prompt;
}

/** The generic family's system-message text for `tools`. */
export function genericToolPrompt(tools: readonly ToolDefinition[]): string {
  const lines = tools.map((tool) =>
    JSON.stringify({ name: tool.name, ...(tool.description === undefined ? {} : { description: tool.description }), parameters: tool.parameters }),
  );
  return `${GENERIC_TOOL_INSTRUCTIONS}\n${lines.join("\n")}`;
}

/** One call in the generic syntax, as generated and as rendered back into history. */
export function genericToolCallText(call: { name: string; arguments: string }): string {
  return `<tool_call>{"name": ${JSON.stringify(call.name)}, "arguments": ${compactJson(call.arguments)}}</tool_call>`;
}

/** One tool result in the generic syntax (a user turn's text). */
export function genericToolResponseText(result: { toolCallId: string; name?: string | undefined; content: string }): string {
  const name = result.name === undefined ? "" : `, "name": ${JSON.stringify(result.name)}`;
  return `<tool_response>{"tool_call_id": ${JSON.stringify(result.toolCallId)}${name}, "content": ${JSON.stringify(result.content)}}</tool_response>`;
}

function parseTemplate(source: string): Template {
  try {
    return new Template(source);
  } catch (error) {
    throw templateFailure(error);
  }
}

function templateFailure(error: unknown): LmxError {
  const reason = error instanceof Error ? error.message : String(error);
  return new LmxError("invalid_request", `the model's chat template failed: ${reason}`, { param: "messages", cause: error });
}

function toHfMessages(turns: readonly ChatTurn[]): HfMessage[] {
  const namesById = new Map<string, string>();
  return turns.map((turn): HfMessage => {
    switch (turn.role) {
      case "assistant": {
        const calls = turn.toolCalls !== undefined && turn.toolCalls.length > 0;
        // null content is HF's shape only beside tool calls; templates concatenate it otherwise.
        const message: HfMessage = { role: "assistant", content: turn.content ?? (calls ? null : "") };
        if (turn.reasoning !== undefined) message.reasoning_content = turn.reasoning;
        if (calls && turn.toolCalls) {
          for (const call of turn.toolCalls) namesById.set(call.id, call.name);
          message.tool_calls = turn.toolCalls.map(toHfToolCall);
        }
        return message;
      }
      case "tool": {
        const name = turn.name ?? namesById.get(turn.toolCallId);
        return { role: "tool", content: turn.content, tool_call_id: turn.toolCallId, ...(name === undefined ? {} : { name }) };
      }
      default:
        // OpenAI's "developer" role is the system role to every template.
        return { role: (turn.role as string) === "developer" ? "system" : turn.role, content: turn.content };
    }
  });
}

function toHfToolCall(call: ToolCallRecord): HfToolCall {
  return { id: call.id, type: "function", function: { name: call.name, arguments: parseArguments(call.arguments) } };
}

/** Templates expect an object (they `tojson` it); text that is not JSON stays text, which they print as is. */
function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function compactJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

function toHfTool(tool: ToolDefinition): HfTool {
  return {
    type: "function",
    function: { name: tool.name, ...(tool.description === undefined ? {} : { description: tool.description }), parameters: tool.parameters },
  };
}

/**
 * Generic family: templates without tool support know no `tool` role and no tool_calls (many raise on them), so
 * past calls become assistant text and consecutive results become one user turn, in the generic syntax.
 */
function textualizeToolTurns(messages: readonly HfMessage[]): HfMessage[] {
  const out: HfMessage[] = [];
  for (const message of messages) {
    if (message.role === "assistant" && message.tool_calls) {
      const calls = message.tool_calls.map((call) =>
        genericToolCallText({ name: call.function.name, arguments: JSON.stringify(call.function.arguments) }),
      );
      const content = [message.content ?? "", ...calls].filter((part) => part.length > 0).join("\n");
      out.push({ role: "assistant", content, ...(message.reasoning_content === undefined ? {} : { reasoning_content: message.reasoning_content }) });
    } else if (message.role === "tool") {
      const text = genericToolResponseText({ toolCallId: message.tool_call_id ?? "", name: message.name, content: message.content ?? "" });
      const previous = out.at(-1);
      if (previous?.role === "user" && previous.content?.endsWith("</tool_response>")) previous.content += `\n${text}`;
      else out.push({ role: "user", content: text });
    } else {
      out.push({ ...message });
    }
  }
  return out;
}

/** Appends `text` to the leading system message, or adds one. */
function withSystemText(messages: readonly HfMessage[], text: string): HfMessage[] {
  const first = messages[0];
  if (first?.role === "system") return [{ ...first, content: first.content ? `${first.content}\n\n${text}` : text }, ...messages.slice(1)];
  return [{ role: "system", content: text }, ...messages];
}

/** The messages with every system message folded into the first user turn; null when there is nothing to fold. */
function mergeSystemIntoFirstUser(messages: readonly HfMessage[]): HfMessage[] | null {
  const system = messages.filter((message) => message.role === "system");
  if (system.length === 0) return null;
  const rest = messages.filter((message) => message.role !== "system");
  const systemText = system.map((message) => message.content ?? "").join("\n\n");
  const firstUser = rest.findIndex((message) => message.role === "user");
  if (firstUser < 0) return [{ role: "user", content: systemText }, ...rest];
  return rest.map((message, index) => (index === firstUser ? { ...message, content: `${systemText}\n\n${message.content ?? ""}` } : message));
}

const MISTRAL_ID = /^[A-Za-z0-9]{9}$/;

/**
 * Mistral's templates require 9-character alphanumeric call ids; OpenAI ids (`call_…`) are mapped onto such ids,
 * the same for a call and its result.
 */
export function mistralCallId(id: string): string {
  if (MISTRAL_ID.test(id)) return id;
  const digest = createHash("sha256")
    .update(id)
    .digest("base64")
    .replace(/[^A-Za-z0-9]/g, "");
  return digest.slice(0, 9);
}

function withMistralIds(messages: readonly HfMessage[]): HfMessage[] {
  return messages.map((message) => {
    if (message.tool_calls) return { ...message, tool_calls: message.tool_calls.map((call) => ({ ...call, id: mistralCallId(call.id) })) };
    if (message.tool_call_id !== undefined) return { ...message, tool_call_id: mistralCallId(message.tool_call_id) };
    return message;
  });
}
