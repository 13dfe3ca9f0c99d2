/**
 * Tiny random-weight models that carry one chat-template family each, so the chat layer's rendering, grammars
 * and parsers are tested against every tool-call syntax we support. Each template is written here from the
 * family's documented format (markers and layout); none is a copy of a model's template file. Each renders
 * with @huggingface/jinja and with llama.cpp's own Jinja engine to the same text (test/integration).
 *
 * How each family writes a tool call (what the parsers read) is documented in docs/tools.md and next to each
 * template below.
 */
import { LLAMA_SHAPES, writeLlamaModel, type FamilyChatTemplate, type LlamaWeightType } from "./llama-model.js";

export type ChatFamilyName = "llama3" | "hermes" | "qwen3" | "mistral" | "harmony";
export const CHAT_FAMILY_NAMES: readonly ChatFamilyName[] = ["llama3", "hermes", "qwen3", "mistral", "harmony"];

/** Jinja source from readable lines: every tag trims the layout whitespace before it, so only literals render. */
const jinja = (lines: readonly string[]): string => lines.map((line) => line.trim()).join("\n");

/** An assistant call's arguments as JSON: HF's shape carries an object; a string is already JSON. */
const ARGS_JSON = String.raw`{%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}`;

/**
 * Llama 3.1 "custom tools" (JSON) format. Tools are listed in the system turn; the model answers a call as
 * `{"name": "NAME", "parameters": {…}}` (one object per line for several calls) and ends with `<|eot_id|>`;
 * results come back as role `ipython`. `<|eom_id|>` also ends generation.
 */
const LLAMA3_TEMPLATE = jinja([
  String.raw`{{- bos_token }}`,
  String.raw`{%- if messages and messages[0].role == 'system' %}`,
  String.raw`{%- set system_text = messages[0].content %}{%- set rest = messages[1:] %}`,
  String.raw`{%- else %}{%- set system_text = '' %}{%- set rest = messages %}{%- endif %}`,
  String.raw`{%- if system_text or tools %}`,
  String.raw`{{- '<|start_header_id|>system<|end_header_id|>\n\n' + system_text }}`,
  String.raw`{%- if tools %}`,
  String.raw`{%- if system_text %}{{- '\n\n' }}{%- endif %}`,
  String.raw`{{- 'You can call the functions below. To call one, answer with only a JSON object of the form {"name": function name, "parameters": object of argument values}, and nothing else.\n\nFunctions:' }}`,
  String.raw`{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}`,
  String.raw`{%- endif %}`,
  String.raw`{{- '<|eot_id|>' }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- for message in rest %}`,
  String.raw`{%- if message.role == 'tool' or message.role == 'ipython' %}`,
  String.raw`{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}`,
  String.raw`{%- elif message.role == 'assistant' and message.tool_calls %}`,
  String.raw`{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}`,
  String.raw`{%- for tc in message.tool_calls %}{%- set call = tc.function %}`,
  String.raw`{%- if not loop.first %}{{- '\n' }}{%- endif %}`,
  String.raw`{{- '{"name": "' + call.name + '", "parameters": ' }}${ARGS_JSON}{{- '}' }}`,
  String.raw`{%- endfor %}`,
  String.raw`{{- '<|eot_id|>' }}`,
  String.raw`{%- else %}`,
  String.raw`{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content or '') + '<|eot_id|>' }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- endfor %}`,
  String.raw`{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}`,
]);

/** The ChatML turns shared by hermes and qwen3; `thinking` adds Qwen3's reasoning block. */
function chatmlToolsTemplate(thinking: boolean): string {
  const assistantBody = thinking
    ? [
        // Qwen3 keeps reasoning only in the turns after the last user message (the current tool loop).
        String.raw`{%- if loop.index0 > ns.last_user and message.reasoning_content is string and message.reasoning_content %}`,
        String.raw`{{- '<think>\n' + message.reasoning_content + '\n</think>\n\n' }}`,
        String.raw`{%- endif %}`,
      ]
    : [];
  return jinja([
    String.raw`{%- set ns = namespace(last_user=-1) %}`,
    String.raw`{%- for message in messages %}{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}`,
    String.raw`{%- if tools %}`,
    String.raw`{{- '<|im_start|>system\n' }}`,
    String.raw`{%- if messages and messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}`,
    String.raw`{{- '# Tools\n\nYou may call one or more of the functions described inside <tools></tools>:\n<tools>' }}`,
    String.raw`{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}`,
    String.raw`{{- '\n</tools>\n\nTo call a function, write a JSON object with its name and arguments inside <tool_call></tool_call> tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}`,
    String.raw`{%- elif messages and messages[0].role == 'system' %}`,
    String.raw`{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}`,
    String.raw`{%- endif %}`,
    String.raw`{%- for message in messages %}`,
    String.raw`{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}`,
    String.raw`{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}`,
    String.raw`{%- elif message.role == 'assistant' %}`,
    String.raw`{{- '<|im_start|>assistant\n' }}`,
    ...assistantBody,
    String.raw`{%- if message.content is string %}{{- message.content }}{%- endif %}`,
    String.raw`{%- if message.tool_calls %}{%- for tc in message.tool_calls %}{%- set call = tc.function %}`,
    String.raw`{%- if not loop.first or (message.content is string and message.content) %}{{- '\n' }}{%- endif %}`,
    String.raw`{{- '<tool_call>\n{"name": "' + call.name + '", "arguments": ' }}${ARGS_JSON}{{- '}\n</tool_call>' }}`,
    String.raw`{%- endfor %}{%- endif %}`,
    String.raw`{{- '<|im_end|>\n' }}`,
    String.raw`{%- elif message.role == 'tool' %}`,
    String.raw`{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}`,
    String.raw`{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}`,
    String.raw`{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}`,
    String.raw`{%- endif %}`,
    String.raw`{%- endfor %}`,
    String.raw`{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}`,
    ...(thinking ? [String.raw`{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}`] : []),
    String.raw`{%- endif %}`,
  ]);
}

/**
 * Mistral v3 (7B-Instruct-v0.3 style). Tools go in `[AVAILABLE_TOOLS] […][/AVAILABLE_TOOLS]` right before the last
 * user turn; the system message is prepended to that turn. A call is `[TOOL_CALLS] [{"name": …, "arguments": …}]`
 * followed by EOS; calls in the history carry Mistral's 9-character alphanumeric `"id"` (the template refuses
 * others; the renderer maps OpenAI ids onto such ids). Generated calls need no id.
 */
const MISTRAL_TEMPLATE = jinja([
  String.raw`{%- if messages and messages[0].role == 'system' %}`,
  String.raw`{%- set system_text = messages[0].content %}{%- set rest = messages[1:] %}`,
  String.raw`{%- else %}{%- set system_text = '' %}{%- set rest = messages %}{%- endif %}`,
  String.raw`{%- set ns = namespace(last_user=-1) %}`,
  String.raw`{%- for message in rest %}{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}`,
  String.raw`{{- bos_token }}`,
  String.raw`{%- for message in rest %}`,
  String.raw`{%- if message.role == 'user' %}`,
  String.raw`{%- if loop.index0 == ns.last_user %}`,
  String.raw`{%- if tools %}{{- '[AVAILABLE_TOOLS] ' + (tools | tojson) + '[/AVAILABLE_TOOLS]' }}{%- endif %}`,
  String.raw`{%- if system_text %}{{- '[INST] ' + system_text + '\n\n' + message.content + '[/INST]' }}{%- else %}{{- '[INST] ' + message.content + '[/INST]' }}{%- endif %}`,
  String.raw`{%- else %}{{- '[INST] ' + message.content + '[/INST]' }}{%- endif %}`,
  String.raw`{%- elif message.role == 'assistant' and message.tool_calls %}`,
  String.raw`{{- '[TOOL_CALLS] [' }}`,
  String.raw`{%- for tc in message.tool_calls %}{%- set call = tc.function %}`,
  String.raw`{%- if tc.id is not string or tc.id | length != 9 %}{{- raise_exception('Mistral tool call ids must be 9 alphanumeric characters') }}{%- endif %}`,
  String.raw`{%- if not loop.first %}{{- ', ' }}{%- endif %}`,
  String.raw`{{- '{"name": "' + call.name + '", "arguments": ' }}${ARGS_JSON}{{- ', "id": "' + tc.id + '"}' }}`,
  String.raw`{%- endfor %}`,
  String.raw`{{- ']' + eos_token }}`,
  String.raw`{%- elif message.role == 'assistant' %}`,
  String.raw`{{- ' ' + (message.content or '') + eos_token }}`,
  String.raw`{%- elif message.role == 'tool' %}`,
  String.raw`{%- if message.tool_call_id is not string or message.tool_call_id | length != 9 %}{{- raise_exception('Mistral tool call ids must be 9 alphanumeric characters') }}{%- endif %}`,
  String.raw`{{- '[TOOL_RESULTS] {"content": ' + (message.content | tojson) + ', "call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}`,
  String.raw`{%- else %}`,
  String.raw`{{- raise_exception('Only user, assistant and tool roles are supported after the system message') }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- endfor %}`,
]);

/**
 * OpenAI harmony (gpt-oss). The client's system message becomes the developer message's instructions; tools are
 * declared there as `namespace functions { type NAME = (_: {…}) => any; }`. The assistant writes reasoning as
 * `<|channel|>analysis<|message|>…<|end|>`, the answer as `<|start|>assistant<|channel|>final<|message|>…` ending
 * with `<|return|>`, and a call as `<|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}`
 * ending with `<|call|>`. The generation prompt is `<|start|>assistant`, so a generation starts at `<|channel|>`.
 */
const HARMONY_TEMPLATE = jinja([
  String.raw`{%- macro ts_type(schema) %}`,
  String.raw`{%- if schema.enum is defined %}{%- for v in schema.enum %}{%- if not loop.first %}{{- ' | ' }}{%- endif %}{{- v | tojson }}{%- endfor %}`,
  String.raw`{%- elif schema.type == 'string' %}{{- 'string' }}`,
  String.raw`{%- elif schema.type == 'number' or schema.type == 'integer' %}{{- 'number' }}`,
  String.raw`{%- elif schema.type == 'boolean' %}{{- 'boolean' }}`,
  String.raw`{%- elif schema.type == 'array' %}{%- if schema['items'] is defined %}{{- ts_type(schema['items']) + '[]' }}{%- else %}{{- 'any[]' }}{%- endif %}`,
  String.raw`{%- elif schema.type == 'object' %}{{- 'object' }}`,
  String.raw`{%- else %}{{- 'any' }}{%- endif %}`,
  String.raw`{%- endmacro %}`,
  String.raw`{%- if messages and (messages[0].role == 'system' or messages[0].role == 'developer') %}`,
  String.raw`{%- set instructions = messages[0].content %}{%- set rest = messages[1:] %}`,
  String.raw`{%- else %}{%- set instructions = '' %}{%- set rest = messages %}{%- endif %}`,
  String.raw`{%- set ns = namespace(last_user=-1) %}`,
  String.raw`{%- for message in rest %}{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}`,
  String.raw`{{- '<|start|>system<|message|>Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.' }}`,
  String.raw`{%- if tools %}{{- "\nCalls to these tools must go to the commentary channel: 'functions'." }}{%- endif %}`,
  String.raw`{{- '<|end|>' }}`,
  String.raw`{%- if instructions or tools %}`,
  String.raw`{{- '<|start|>developer<|message|>' }}`,
  String.raw`{%- if instructions %}{{- '# Instructions\n\n' + instructions }}{%- if tools %}{{- '\n\n' }}{%- endif %}{%- endif %}`,
  String.raw`{%- if tools %}`,
  String.raw`{{- '# Tools\n\n## functions\n\nnamespace functions {\n\n' }}`,
  String.raw`{%- for tool in tools %}{%- set fn = tool.function %}`,
  String.raw`{%- if fn.description %}{{- '// ' + fn.description + '\n' }}{%- endif %}`,
  String.raw`{%- if fn.parameters and fn.parameters.properties %}`,
  String.raw`{{- 'type ' + fn.name + ' = (_: {\n' }}`,
  String.raw`{%- for name, prop in fn.parameters.properties.items() %}`,
  String.raw`{%- if prop.description %}{{- '// ' + prop.description + '\n' }}{%- endif %}`,
  String.raw`{%- if fn.parameters.required and name in fn.parameters.required %}{{- name + ': ' }}{%- else %}{{- name + '?: ' }}{%- endif %}`,
  String.raw`{{- ts_type(prop) + ',\n' }}`,
  String.raw`{%- endfor %}`,
  String.raw`{{- '}) => any;\n\n' }}`,
  String.raw`{%- else %}{{- 'type ' + fn.name + ' = () => any;\n\n' }}{%- endif %}`,
  String.raw`{%- endfor %}`,
  String.raw`{{- '} // namespace functions' }}`,
  String.raw`{%- endif %}`,
  String.raw`{{- '<|end|>' }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- for message in rest %}`,
  String.raw`{%- if message.role == 'user' %}`,
  String.raw`{{- '<|start|>user<|message|>' + message.content + '<|end|>' }}`,
  String.raw`{%- elif message.role == 'assistant' %}`,
  String.raw`{%- if message.thinking is string %}{%- set reasoning = message.thinking %}{%- elif message.reasoning_content is string %}{%- set reasoning = message.reasoning_content %}{%- else %}{%- set reasoning = '' %}{%- endif %}`,
  // Reasoning is kept only in the current tool loop (after the last user message), as gpt-oss expects.
  String.raw`{%- if reasoning and loop.index0 > ns.last_user %}{{- '<|start|>assistant<|channel|>analysis<|message|>' + reasoning + '<|end|>' }}{%- endif %}`,
  String.raw`{%- if message.tool_calls %}`,
  String.raw`{%- if message.content is string and message.content %}{{- '<|start|>assistant<|channel|>commentary<|message|>' + message.content + '<|end|>' }}{%- endif %}`,
  String.raw`{%- for tc in message.tool_calls %}{%- set call = tc.function %}`,
  String.raw`{{- '<|start|>assistant<|channel|>commentary to=functions.' + call.name + ' <|constrain|>json<|message|>' }}${ARGS_JSON}{{- '<|call|>' }}`,
  String.raw`{%- endfor %}`,
  String.raw`{%- else %}`,
  String.raw`{{- '<|start|>assistant<|channel|>final<|message|>' + (message.content or '') + '<|end|>' }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- elif message.role == 'tool' %}`,
  String.raw`{{- '<|start|>functions.' + message.name + ' to=assistant<|channel|>commentary<|message|>' + message.content + '<|end|>' }}`,
  String.raw`{%- elif message.role == 'system' or message.role == 'developer' %}`,
  String.raw`{{- '<|start|>developer<|message|>' + message.content + '<|end|>' }}`,
  String.raw`{%- endif %}`,
  String.raw`{%- endfor %}`,
  String.raw`{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}`,
]);

const HERMES_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"];

export const CHAT_FAMILY_FIXTURES: Readonly<Record<ChatFamilyName, FamilyChatTemplate>> = {
  llama3: {
    jinja: LLAMA3_TEMPLATE,
    specialTokens: ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"],
    eosToken: "<|eot_id|>",
    extraEogTokens: ["<|eom_id|>"],
    bosToken: "<|begin_of_text|>",
    addBos: true,
  },
  hermes: {
    jinja: chatmlToolsTemplate(false),
    specialTokens: HERMES_SPECIALS,
    // As in Qwen2.5: the call markers are added tokens but not special ones, so they are always printed.
    textTokens: ["<tool_call>", "</tool_call>"],
    eosToken: "<|im_end|>",
    bosToken: "<|endoftext|>",
    addBos: false,
  },
  qwen3: {
    jinja: chatmlToolsTemplate(true),
    specialTokens: HERMES_SPECIALS,
    textTokens: ["<tool_call>", "</tool_call>", "<think>", "</think>", "<tool_response>", "</tool_response>"],
    eosToken: "<|im_end|>",
    bosToken: "<|endoftext|>",
    addBos: false,
  },
  mistral: {
    jinja: MISTRAL_TEMPLATE,
    specialTokens: ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"],
    eosToken: "</s>",
    bosToken: "<s>",
    addBos: true,
  },
  harmony: {
    jinja: HARMONY_TEMPLATE,
    specialTokens: ["<|startoftext|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>"],
    eosToken: "<|return|>",
    extraEogTokens: ["<|call|>"],
    bosToken: "<|startoftext|>",
    addBos: false,
  },
};

export interface ChatFamilyModelOptions {
  readonly seed?: number;
  readonly weightType?: Extract<LlamaWeightType, "f32" | "q8_0">;
}

/** Writes the tiny random-weight llama with `family`'s template and tokens. */
export async function writeChatFamilyModel(path: string, family: ChatFamilyName, options: ChatFamilyModelOptions = {}): Promise<{ bytes: number }> {
  return writeLlamaModel(path, {
    shape: LLAMA_SHAPES.tiny,
    weightType: options.weightType ?? "f32",
    seed: options.seed ?? 42,
    name: `tiny-random-${family}`,
    chatTemplate: CHAT_FAMILY_FIXTURES[family],
  });
}
