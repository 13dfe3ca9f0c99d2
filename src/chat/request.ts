/**
 * An OpenAI chat request as the chat layer works with it: the conversation as turns, the tools with checked
 * schemas, the tool choice resolved against them, the output constraint. Everything a client can get wrong is
 * refused here, before a model is loaded or a slot is taken.
 */
import { LmxError } from "../errors/codes.js";
import type { ChatCompletionRequest } from "../api/openai/schemas.js";
import { messageText } from "../api/openai/messages.js";
import { checkEnforceable } from "./json-schema/gbnf.js";
import { assertValidJsonSchema } from "./json-schema/validate.js";
import type { ChatTurn, JsonSchema, ToolChoice, ToolDefinition } from "./types.js";

export type OutputConstraint = { kind: "text" } | { kind: "json_object" } | { kind: "json_schema"; name: string; schema: JsonSchema };

export interface ChatJob {
  turns: ChatTurn[];
  /** The tools the model may call (empty when none were offered or tool_choice is "none"). */
  tools: ToolDefinition[];
  /** The tools the template describes to the model: all offered ones, even with tool_choice "none". */
  offeredTools: ToolDefinition[];
  choice: ToolChoice;
  parallel: boolean;
  output: OutputConstraint;
  /** Top log-probabilities per token (0: the chosen token's only), or null when logprobs were not asked for. */
  logprobs: number | null;
  choices: number;
  reasoningEffort: string | null;
  /**
   * Names of the offered tools the server runs itself (`{"type":"skill"}` entries, docs/skills.md); empty or absent
   * when the client runs every call.
   */
  serverTools?: ReadonlySet<string>;
}

/** What the chat layer needs to know of a skill offered with `{"type":"skill"}` (the skills registry answers). */
export interface SkillLookup {
  get(name: string): { description: string; parameters: JsonSchema; allowInLoop: boolean } | undefined;
}

/** An empty arguments object: what a function declared without parameters is called with. */
const NO_PARAMETERS: JsonSchema = { type: "object", properties: {}, additionalProperties: false };

/**
 * Whether a request needs the chat layer (tools, tool history, a JSON constraint, logprobs, several choices);
 * a plain chat request keeps the engine's own template path, which is byte-for-byte relayed.
 */
export function needsChatLayer(body: ChatCompletionRequest): boolean {
  return (
    (body.tools?.length ?? 0) > 0 ||
    (body.response_format !== undefined && body.response_format.type !== "text") ||
    body.logprobs === true ||
    (body.n ?? 1) > 1 ||
    body.messages.some((m) => m.role === "tool" || (m.role === "assistant" && ((m.tool_calls?.length ?? 0) > 0 || !!m.reasoning_content)))
  );
}

/** `skills` resolves `{"type":"skill"}` tools; without it (a dialect that has no server-side loop) they are refused. */
export function chatJobFrom(body: ChatCompletionRequest, skills?: SkillLookup): ChatJob {
  const serverTools = new Set<string>();
  const offeredTools = (body.tools ?? []).map((tool, index): ToolDefinition => {
    if (tool.type === "skill") {
      const definition = skillTool(tool.skill.name, index, skills);
      serverTools.add(tool.skill.name);
      return definition;
    }
    const param = `tools[${index}].function.parameters`;
    const parameters = (tool.function.parameters as JsonSchema | undefined) ?? NO_PARAMETERS;
    assertValidJsonSchema(parameters, param);
    return { name: tool.function.name, description: tool.function.description, parameters };
  });
  const names = new Set<string>();
  offeredTools.forEach((tool, index) => {
    if (names.has(tool.name)) {
      const at = body.tools?.[index]?.type === "skill" ? `tools[${index}].skill.name` : `tools[${index}].function.name`;
      throw new LmxError("invalid_value", `two tools are named '${tool.name}'`, { param: at });
    }
    names.add(tool.name);
  });
  const choice = toolChoiceOf(body, offeredTools);
  const schemaParam = (i: number) => (body.tools?.[i]?.type === "skill" ? `tools[${i}].skill` : `tools[${i}].function.parameters`);
  // a grammar writes forced calls: every schema it embeds must be one it can enforce
  if (choice.kind === "required") offeredTools.forEach((tool, i) => checkEnforceable(tool.parameters, schemaParam(i)));
  if (choice.kind === "named") {
    const index = offeredTools.findIndex((tool) => tool.name === choice.name);
    checkEnforceable(offeredTools[index]!.parameters, schemaParam(index));
  }
  if (serverTools.size > 0 && (body.n ?? 1) > 1) {
    throw new LmxError(
      "unsupported_parameter",
      "n > 1 cannot be combined with tools of type 'skill' (the server-side tool loop runs one conversation)",
      {
        param: "n",
      },
    );
  }
  const output = outputOf(body);
  if (output.kind !== "text" && (choice.kind === "required" || choice.kind === "named")) {
    throw new LmxError(
      "invalid_value",
      "response_format constrains the answer's text, and this tool_choice forces a tool call instead; send one of them",
      {
        param: "response_format",
      },
    );
  }
  return {
    turns: turnsOf(body),
    tools: choice.kind === "none" ? [] : offeredTools,
    offeredTools,
    choice,
    parallel: body.parallel_tool_calls ?? true,
    output,
    logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
    choices: body.n ?? 1,
    reasoningEffort: body.reasoning_effort ?? null,
    ...(serverTools.size > 0 ? { serverTools } : {}),
  };
}

/** A `{"type":"skill"}` entry as the function tool the model sees: the skill's own description and schema. */
function skillTool(name: string, index: number, skills: SkillLookup | undefined): ToolDefinition {
  if (!skills) {
    throw new LmxError("unsupported_parameter", "tools of type 'skill' are only run on /v1/chat/completions", { param: `tools[${index}].type` });
  }
  const skill = skills.get(name);
  if (!skill) {
    throw new LmxError("invalid_value", `no skill named '${name}'; GET /v1/skills lists them`, { param: `tools[${index}].skill.name` });
  }
  if (!skill.allowInLoop) {
    throw new LmxError("invalid_value", `skill '${name}' may not run in the server-side tool loop (skills.allow_in_loop)`, {
      param: `tools[${index}]`,
    });
  }
  return { name, description: skill.description, parameters: skill.parameters };
}

function toolChoiceOf(body: ChatCompletionRequest, tools: ToolDefinition[]): ToolChoice {
  const choice = body.tool_choice;
  if (choice === undefined) return { kind: tools.length > 0 ? "auto" : "none" };
  if (typeof choice === "string") {
    if ((choice === "required" || choice === "auto") && tools.length === 0) {
      throw new LmxError("invalid_value", `tool_choice '${choice}' needs at least one tool in 'tools'`, { param: "tool_choice" });
    }
    return { kind: choice };
  }
  const name = choice.function.name;
  if (!tools.some((tool) => tool.name === name)) {
    throw new LmxError("invalid_value", `tool_choice names the function '${name}', which is not in 'tools'`, { param: "tool_choice" });
  }
  return { kind: "named", name };
}

function outputOf(body: ChatCompletionRequest): OutputConstraint {
  const format = body.response_format;
  if (!format || format.type === "text") return { kind: "text" };
  if (format.type === "json_object") return { kind: "json_object" };
  const schema = (format.json_schema.schema as JsonSchema | undefined) ?? { type: "object" };
  assertValidJsonSchema(schema, "response_format.json_schema.schema");
  checkEnforceable(schema, "response_format.json_schema.schema");
  return { kind: "json_schema", name: format.json_schema.name, schema };
}

function turnsOf(body: ChatCompletionRequest): ChatTurn[] {
  const callNames = new Map<string, string>();
  return body.messages.map((message, index): ChatTurn => {
    switch (message.role) {
      case "system":
      case "developer":
        return { role: "system", content: messageText(message.content) };
      case "user":
        return { role: "user", content: messageText(message.content) };
      case "assistant": {
        const toolCalls = message.tool_calls?.map((call, c) => {
          checkArgumentsText(call.function.arguments, `messages[${index}].tool_calls[${c}].function.arguments`);
          callNames.set(call.id, call.function.name);
          return { id: call.id, name: call.function.name, arguments: call.function.arguments };
        });
        const content = message.content === null || message.content === undefined ? null : messageText(message.content);
        return { role: "assistant", content, reasoning: message.reasoning_content ?? undefined, toolCalls };
      }
      case "tool":
        if (!callNames.has(message.tool_call_id)) {
          throw new LmxError("invalid_value", `tool_call_id '${message.tool_call_id}' answers no tool call of an earlier assistant message`, {
            param: `messages[${index}].tool_call_id`,
          });
        }
        return { role: "tool", content: messageText(message.content), toolCallId: message.tool_call_id, name: callNames.get(message.tool_call_id) };
    }
  });
}

/** Arguments travel as JSON text: a history entry whose text is not a JSON object would break the template. */
function checkArgumentsText(text: string, param: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new LmxError("invalid_value", "a tool call's arguments must be a JSON object written as a string", { param });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new LmxError("invalid_value", "a tool call's arguments must be a JSON object written as a string", { param });
  }
}
