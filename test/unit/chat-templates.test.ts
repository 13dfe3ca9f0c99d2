import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LmxError } from "../../src/errors/codes.js";
import { CHAT_FAMILY_FIXTURES, type ChatFamilyName } from "../../src/gguf/chat-families.js";
import { CHATML_TEMPLATE } from "../../src/gguf/llama-model.js";
import { detectFamily } from "../../src/chat/templates/family.js";
import { GENERIC_TOOL_INSTRUCTIONS, mistralCallId, renderPrompt } from "../../src/chat/templates/render.js";
import type { ChatTurn, TemplateInfo, ToolDefinition } from "../../src/chat/types.js";

const weather: ToolDefinition = {
  name: "get_weather",
  description: "Weather now",
  parameters: { type: "object", properties: { city: { type: "string", description: "City" } }, required: ["city"] },
};

/** A finished tool loop: ask, call, result, answer, then a new question. */
const toolLoop: ChatTurn[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Weather in Paris?" },
  {
    role: "assistant",
    content: null,
    reasoning: "I need the tool.",
    toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }],
  },
  { role: "tool", content: "sunny", toolCallId: "call_1" },
  { role: "assistant", content: "It is sunny." },
  { role: "user", content: "Thanks" },
];

/** The current tool loop: the calls and results come after the last user message. */
const openLoop: ChatTurn[] = [
  { role: "user", content: "Weather in Paris and Rome?" },
  {
    role: "assistant",
    content: null,
    reasoning: "Two cities.",
    toolCalls: [
      { id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' },
      { id: "call_2", name: "get_weather", arguments: '{"city":"Rome"}' },
    ],
  },
  { role: "tool", content: "sunny", toolCallId: "call_1" },
  { role: "tool", content: "rainy", toolCallId: "call_2" },
];

function fixtureInfo(family: ChatFamilyName, addsBos?: boolean): TemplateInfo {
  const fixture = CHAT_FAMILY_FIXTURES[family];
  return { jinja: fixture.jinja, bosToken: fixture.bosToken ?? "<s>", eosToken: fixture.eosToken, addsBos: addsBos ?? fixture.addBos ?? true };
}

const chatmlInfo: TemplateInfo = { jinja: CHATML_TEMPLATE, bosToken: "<s>", eosToken: "<|im_end|>", addsBos: true };

describe("detectFamily", () => {
  test("each family fixture", () => {
    assert.deepEqual(detectFamily(CHAT_FAMILY_FIXTURES.llama3.jinja), { family: "llama3", thinking: false, toolsInTemplate: true });
    assert.deepEqual(detectFamily(CHAT_FAMILY_FIXTURES.hermes.jinja), { family: "hermes", thinking: false, toolsInTemplate: true });
    assert.deepEqual(detectFamily(CHAT_FAMILY_FIXTURES.qwen3.jinja), { family: "hermes", thinking: true, toolsInTemplate: true });
    assert.deepEqual(detectFamily(CHAT_FAMILY_FIXTURES.mistral.jinja), { family: "mistral", thinking: false, toolsInTemplate: true });
    assert.deepEqual(detectFamily(CHAT_FAMILY_FIXTURES.harmony.jinja), { family: "harmony", thinking: true, toolsInTemplate: true });
  });

  test("no template, or one without tool syntax, is generic", () => {
    assert.deepEqual(detectFamily(null), { family: "generic", thinking: false, toolsInTemplate: false });
    assert.deepEqual(detectFamily(CHATML_TEMPLATE), { family: "generic", thinking: false, toolsInTemplate: false });
  });

  test("markers of real templates", () => {
    // Llama 3.0: header markers but no tools.
    const llama30 =
      "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";
    assert.equal(detectFamily(llama30).family, "generic");
    // Llama 3.1/3.2/3.3: the ipython role and the "parameters" call shape.
    const llama31 =
      llama30 + "{%- if message.role == 'ipython' or message.role == 'tool' %}{{- '\"parameters\": ' }}{%- endif %}{%- if tools %}{%- endif %}";
    assert.deepEqual(detectFamily(llama31), { family: "llama3", thinking: false, toolsInTemplate: true });
    const qwen25 = '{%- if tools %}<tools>{{ tool | tojson }}</tools>{%- endif %}{{- \'<tool_call>\\n{"name": "\' }}';
    assert.deepEqual(detectFamily(qwen25), { family: "hermes", thinking: false, toolsInTemplate: true });
    assert.deepEqual(detectFamily(qwen25 + "{{- '<think>\\n' + reasoning_content }}"), { family: "hermes", thinking: true, toolsInTemplate: true });
    // DeepSeek-R1 style: reasoning, but a tool syntax we do not speak.
    assert.deepEqual(detectFamily("{{'<｜Assistant｜><think>\\n'}}{{'<｜tool▁calls▁begin｜>'}}"), {
      family: "generic",
      thinking: true,
      toolsInTemplate: false,
    });
    assert.equal(detectFamily("{{- '[AVAILABLE_TOOLS] [' }}{%- for tool in tools %}{% endfor %}{{- '[TOOL_CALLS] [' }}").family, "mistral");
    assert.equal(detectFamily("{{- '<|start|>assistant<|channel|>final<|message|>' }}").family, "harmony");
  });
});

describe("renderPrompt", () => {
  test("llama3: tools in the system turn, calls as JSON, results as ipython, BOS dropped when the engine adds it", () => {
    const prompt = renderPrompt(fixtureInfo("llama3"), toolLoop, [weather]);
    assert.ok(prompt.startsWith("<|start_header_id|>system<|end_header_id|>\n\nBe brief.\n\nYou can call the functions below."), prompt);
    assert.ok(
      prompt.includes('\n{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object"'),
    );
    assert.ok(
      prompt.includes(
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' +
          "<|start_header_id|>ipython<|end_header_id|>\n\nsunny<|eot_id|>",
      ),
      prompt,
    );
    assert.ok(prompt.endsWith("<|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    assert.ok(renderPrompt(fixtureInfo("llama3", false), toolLoop, [weather]).startsWith("<|begin_of_text|><|start_header_id|>system"));
  });

  test("hermes: <tools> in the system turn, <tool_call> blocks, grouped <tool_response> user turn", () => {
    const prompt = renderPrompt(fixtureInfo("hermes"), openLoop, [weather]);
    assert.ok(prompt.startsWith("<|im_start|>system\n# Tools\n\n"), prompt);
    assert.ok(prompt.includes('<tools>\n{"type": "function", "function": {"name": "get_weather"'));
    assert.ok(
      prompt.endsWith(
        "<|im_start|>assistant\n" +
          '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
          '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n' +
          "<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrainy\n</tool_response><|im_end|>\n" +
          "<|im_start|>assistant\n",
      ),
      prompt,
    );
    assert.ok(!prompt.includes("Two cities."), "hermes has no reasoning block");
  });

  test("qwen3: reasoning is kept in the current tool loop and dropped from past turns", () => {
    const current = renderPrompt(fixtureInfo("qwen3"), openLoop, [weather]);
    assert.ok(current.includes("<|im_start|>assistant\n<think>\nTwo cities.\n</think>\n\n<tool_call>\n"), current);
    const past = renderPrompt(fixtureInfo("qwen3"), toolLoop, [weather]);
    assert.ok(!past.includes("I need the tool."), past);
    assert.ok(past.includes("<|im_start|>assistant\n<tool_call>\n"));
  });

  test("mistral: tools before the last user turn, calls with 9-character ids, results with the same ids", () => {
    const prompt = renderPrompt(fixtureInfo("mistral"), toolLoop, [weather]);
    const id = mistralCallId("call_1");
    assert.match(id, /^[A-Za-z0-9]{9}$/);
    assert.ok(prompt.startsWith("[INST] Weather in Paris?[/INST]"), prompt);
    assert.ok(
      prompt.includes(
        `[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "${id}"}]</s>` +
          `[TOOL_RESULTS] {"content": "sunny", "call_id": "${id}"}[/TOOL_RESULTS] It is sunny.</s>`,
      ),
      prompt,
    );
    assert.ok(
      prompt.endsWith(
        '[AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}}}][/AVAILABLE_TOOLS][INST] Be brief.\n\nThanks[/INST]',
      ),
    );
    assert.equal(mistralCallId("abcDEF123"), "abcDEF123");
    assert.notEqual(mistralCallId("call_2"), id);
  });

  test("harmony: functions namespace, analysis in the current loop, commentary calls, results from functions.NAME", () => {
    const prompt = renderPrompt(fixtureInfo("harmony"), [{ role: "system", content: "Be brief." }, ...openLoop], [weather]);
    assert.ok(
      prompt.includes(
        "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n" +
          "// Weather now\ntype get_weather = (_: {\n// City\ncity: string,\n}) => any;\n\n} // namespace functions<|end|>",
      ),
      prompt,
    );
    assert.ok(
      prompt.endsWith(
        "<|start|>assistant<|channel|>analysis<|message|>Two cities.<|end|>" +
          '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>' +
          '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Rome"}<|call|>' +
          "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>" +
          "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>rainy<|end|>" +
          "<|start|>assistant",
      ),
      prompt,
    );
    const past = renderPrompt(fixtureInfo("harmony"), toolLoop, [weather]);
    assert.ok(!past.includes("I need the tool."));
    assert.ok(past.includes("<|start|>assistant<|channel|>final<|message|>It is sunny.<|end|>"));
  });

  test("generic: tools described in the system message, calls and results rewritten as text", () => {
    const prompt = renderPrompt(chatmlInfo, toolLoop, [weather]);
    const expected =
      "<|im_start|>system\nBe brief.\n\n" +
      GENERIC_TOOL_INSTRUCTIONS +
      '\n{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City"}},"required":["city"]}}<|im_end|>\n' +
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
      '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call><|im_end|>\n' +
      '<|im_start|>user\n<tool_response>{"tool_call_id": "call_1", "name": "get_weather", "content": "sunny"}</tool_response><|im_end|>\n' +
      "<|im_start|>assistant\nIt is sunny.<|im_end|>\n<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n";
    assert.equal(prompt, expected);
    assert.ok(GENERIC_TOOL_INSTRUCTIONS.includes('<tool_call>{"name": "<function name>", "arguments": <JSON object of arguments>}</tool_call>'));
    // Several results in a row are one user turn; no system message gets one for the tools.
    const grouped = renderPrompt(chatmlInfo, openLoop, [weather]);
    assert.ok(grouped.startsWith(`<|im_start|>system\n${GENERIC_TOOL_INSTRUCTIONS}\n`));
    assert.ok(grouped.includes('"content": "sunny"}</tool_response>\n<tool_response>{"tool_call_id": "call_2"'), grouped);
    const without = renderPrompt(chatmlInfo, toolLoop, [weather], { genericToolInstructions: false });
    assert.ok(without.startsWith("<|im_start|>system\nBe brief.<|im_end|>\n"), without);
  });

  test("no template: the ChatML fallback; developer is system; null assistant content renders empty", () => {
    const info: TemplateInfo = { jinja: null, bosToken: null, eosToken: null, addsBos: false };
    const prompt = renderPrompt(
      info,
      [
        { role: "developer" as "system", content: "Rules." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: null },
        { role: "user", content: "?" },
      ],
      null,
    );
    assert.equal(
      prompt,
      "<|im_start|>system\nRules.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>user\n?<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("a template that refuses the system role gets it merged into the first user turn", () => {
    const jinja =
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" +
      "{% for m in messages %}<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}{% if add_generation_prompt %}<turn>model\n{% endif %}";
    const info: TemplateInfo = { jinja, bosToken: "<bos>", eosToken: "<eos>", addsBos: true };
    const prompt = renderPrompt(
      info,
      [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      null,
    );
    assert.equal(prompt, "<turn>user\nBe brief.\n\nHi</turn>\n<turn>model\n");
  });

  test("a template that fails is a 400 naming messages", () => {
    const raising: TemplateInfo = {
      jinja: "{{ raise_exception('Conversation roles must alternate') }}",
      bosToken: null,
      eosToken: null,
      addsBos: false,
    };
    const broken: TemplateInfo = { jinja: "{% for m in messages %}{{ m.content }", bosToken: null, eosToken: null, addsBos: false };
    for (const info of [raising, broken]) {
      assert.throws(
        () => renderPrompt(info, [{ role: "user", content: "Hi" }], null),
        (error: unknown) =>
          error instanceof LmxError &&
          error.code === "invalid_request" &&
          error.status === 400 &&
          error.param === "messages" &&
          error.message.startsWith("the model's chat template failed: "),
      );
    }
    assert.throws(() => renderPrompt(raising, [{ role: "user", content: "Hi" }], null), /Conversation roles must alternate/);
  });

  test("arguments that are not JSON reach the template as text", () => {
    const turns: ChatTurn[] = [
      { role: "user", content: "x" },
      { role: "assistant", content: null, toolCalls: [{ id: "c", name: "get_weather", arguments: "not json" }] },
    ];
    assert.ok(renderPrompt(fixtureInfo("hermes"), turns, [weather]).includes('{"name": "get_weather", "arguments": not json}'));
  });
});
