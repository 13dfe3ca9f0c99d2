import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { toolFormatFor, type ParserOptions } from "../../src/chat/tools/formats.js";
import type { OutputEvent, ToolDefinition, ToolFamily, ToolOutcome } from "../../src/chat/types.js";

const TOOLS: ToolDefinition[] = [
  { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
  { name: "add", parameters: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } } } },
];

interface Run {
  events: OutputEvent[];
  outcome: ToolOutcome;
}

/** Adjacent text events of one kind (and argument fragments of one call) merged: what a client reassembles. */
function merged(events: OutputEvent[]): OutputEvent[] {
  const out: OutputEvent[] = [];
  for (const event of events) {
    const last = out.at(-1);
    if (last !== undefined && (event.type === "content" || event.type === "reasoning") && last.type === event.type) {
      out[out.length - 1] = { ...last, text: last.text + event.text };
    } else if (last !== undefined && event.type === "tool_call_arguments" && last.type === event.type && last.index === event.index) {
      out[out.length - 1] = { ...last, text: last.text + event.text };
    } else out.push({ ...event });
  }
  return out;
}

function parse(family: ToolFamily, pieces: readonly string[], options: Partial<ParserOptions> = {}): Run {
  let n = 0;
  const parser = toolFormatFor(family).parser({ tools: TOOLS, forced: false, newId: () => `call_${n++}`, ...options });
  const events: OutputEvent[] = [];
  for (const piece of pieces) events.push(...parser.push(piece));
  const done = parser.finish();
  return { events: merged([...events, ...done.events]), outcome: done.outcome };
}

/** Parses `text` whole, split at every offset and in 1-character pieces; every way must give the same result. */
function parseEveryWay(family: ToolFamily, text: string, options: Partial<ParserOptions> = {}): Run {
  const whole = parse(family, [text], options);
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(parse(family, [text.slice(0, i), text.slice(i)], options), whole, `split at ${i}: ${JSON.stringify(text.slice(0, i))}`);
  }
  assert.deepEqual(parse(family, [...text], options), whole, "1-character pieces");
  return whole;
}

const content = (text: string): OutputEvent => ({ type: "content", text });
const reasoning = (text: string): OutputEvent => ({ type: "reasoning", text });
const call = (index: number, name: string, args: string): OutputEvent[] => [
  { type: "tool_call_start", index, id: `call_${index}`, name },
  { type: "tool_call_arguments", index, text: args },
];

function expectCalls(run: Run, expected: OutputEvent[], outcome: ToolOutcome): void {
  assert.deepEqual(run.events, expected);
  assert.equal(run.outcome, outcome);
  for (const event of run.events) {
    if (event.type === "tool_call_arguments") assert.equal(typeof JSON.parse(event.text), "object");
  }
}

const WEATHER = '{"city": "Paris"}';
const ADD = '{"a": 1, "b": 22}';

describe("hermes and generic", () => {
  const hermes = (name: string, args: string) => `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`;
  const generic = (name: string, args: string) => `<tool_call>{"name": "${name}", "arguments": ${args}}</tool_call>`;

  test("a single call", () => {
    expectCalls(parseEveryWay("hermes", hermes("get_weather", WEATHER)), call(0, "get_weather", WEATHER), "parsed");
    expectCalls(parseEveryWay("generic", generic("get_weather", WEATHER)), call(0, "get_weather", WEATHER), "parsed");
  });

  test("a forced call reports forced", () => {
    expectCalls(parse("hermes", [hermes("add", ADD)], { forced: true }), call(0, "add", ADD), "forced");
  });

  test("parallel calls, with and without newlines between", () => {
    const expected = [...call(0, "get_weather", WEATHER), ...call(1, "add", ADD)];
    expectCalls(parseEveryWay("hermes", `${hermes("get_weather", WEATHER)}\n${hermes("add", ADD)}`), expected, "parsed");
    expectCalls(parseEveryWay("generic", `${generic("get_weather", WEATHER)}${generic("add", ADD)}`), expected, "parsed");
  });

  test("content before a call is content; the whitespace before the call is not", () => {
    expectCalls(
      parseEveryWay("hermes", `Let me check.\n\n${hermes("get_weather", WEATHER)}\n`),
      [content("Let me check."), ...call(0, "get_weather", WEATHER)],
      "parsed",
    );
  });

  test("plain text, including text that only looks like a tag, is content verbatim", () => {
    const text = "a <tool> b <tool_c and </tool_call>\n";
    expectCalls(parseEveryWay("hermes", text), [content(text)], "none");
  });

  test("arguments keep their exact text (no re-serialisation), `parameters` and a missing close tag are accepted", () => {
    const args = '{"a": 12345678901234567890, "b": 1.50}';
    expectCalls(parseEveryWay("hermes", `<tool_call> {"name":"add","parameters":${args}}`), call(0, "add", args), "parsed");
  });

  test("broken JSON falls back to content", () => {
    const text = `<tool_call>\n{"name": "get_weather", "arguments": {"city": }}\n</tool_call>`;
    expectCalls(parseEveryWay("hermes", text), [content(text)], "fell_back");
    const unclosed = `Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Par`;
    expectCalls(parseEveryWay("generic", unclosed), [content(unclosed)], "fell_back");
  });

  test("an unknown tool or non-object arguments fall back to content", () => {
    const unknown = hermes("launch_rockets", "{}");
    expectCalls(parseEveryWay("hermes", unknown), [content(unknown)], "fell_back");
    const notObject = hermes("add", "[1, 2]");
    expectCalls(parseEveryWay("hermes", notObject), [content(notObject)], "fell_back");
  });

  test("a broken call after a good one: the good one stands, the broken one is content", () => {
    const bad = `<tool_call>{"name": "nope", "arguments": {}}</tool_call>`;
    expectCalls(parseEveryWay("generic", `${generic("add", ADD)}${bad}`), [...call(0, "add", ADD), content(bad)], "fell_back");
  });

  test("text that is certainly content streams at once; a partial marker is held only until decided", () => {
    let n = 0;
    const parser = toolFormatFor("hermes").parser({ tools: TOOLS, forced: false, newId: () => `id${n++}` });
    assert.deepEqual(parser.push("Hello wor"), [content("Hello wor")]);
    assert.deepEqual(parser.push("ld <tool_c"), [content("ld")]);
    assert.deepEqual(parser.push("up"), [content(" <tool_cup")]);
    assert.deepEqual(parser.push(` <tool_call>{"name": "add", "arguments": {"a": 1`), []);
    assert.deepEqual(parser.push(`}}</tool_call>`), [
      { type: "tool_call_start", index: 0, id: "id0", name: "add" },
      { type: "tool_call_arguments", index: 0, text: '{"a": 1}' },
    ]);
    assert.deepEqual(parser.finish(), { events: [], outcome: "parsed" });
  });
});

describe("thinking blocks", () => {
  const thinking = { thinking: true };
  test("a closed block is reasoning, then the call", () => {
    const text = `<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": ${WEATHER}}\n</tool_call>`;
    expectCalls(parseEveryWay("hermes", text, thinking), [reasoning("The user wants weather."), ...call(0, "get_weather", WEATHER)], "parsed");
  });

  test("a block still open at the end is all reasoning", () => {
    expectCalls(
      parseEveryWay("hermes", "<think>\nstill thinking <tool_call> about it\n", thinking),
      [reasoning("still thinking <tool_call> about it")],
      "none",
    );
  });

  test("a block the prompt opened", () => {
    expectCalls(
      parseEveryWay("generic", "Hmm, easy.\n</think>\n\nHello!", { thinking: "open" as const }),
      [reasoning("Hmm, easy."), content("Hello!")],
      "none",
    );
  });

  test("without a block the text is content, and a block later in the answer is not reasoning", () => {
    expectCalls(parseEveryWay("hermes", "Hi <think>x</think>", thinking), [content("Hi <think>x</think>")], "none");
  });

  test("thinking before llama3 and mistral calls", () => {
    const llama = `<think>plan</think>{"name": "add", "parameters": ${ADD}}`;
    expectCalls(parseEveryWay("llama3", llama, thinking), [reasoning("plan"), ...call(0, "add", ADD)], "parsed");
    const mistral = `<think>plan</think>\n\n[TOOL_CALLS] [{"name": "add", "arguments": ${ADD}}]`;
    expectCalls(parseEveryWay("mistral", mistral, thinking), [reasoning("plan"), ...call(0, "add", ADD)], "parsed");
  });
});

describe("llama3", () => {
  const one = (name: string, args: string, key = "parameters") => `{"name": "${name}", "${key}": ${args}}`;

  test("a single call, also after <|python_tag|> and with `arguments`", () => {
    expectCalls(parseEveryWay("llama3", one("get_weather", WEATHER)), call(0, "get_weather", WEATHER), "parsed");
    expectCalls(parseEveryWay("llama3", `<|python_tag|>${one("add", ADD, "arguments")}`), call(0, "add", ADD), "parsed");
  });

  test("parallel calls separated by newlines or `; `", () => {
    const expected = [...call(0, "get_weather", WEATHER), ...call(1, "add", ADD)];
    expectCalls(parseEveryWay("llama3", `${one("get_weather", WEATHER)}\n${one("add", ADD)}\n`), expected, "parsed");
    expectCalls(parseEveryWay("llama3", `${one("get_weather", WEATHER)}; ${one("add", ADD)}`), expected, "parsed");
  });

  test("content before a python-tagged call", () => {
    expectCalls(parseEveryWay("llama3", `Checking. <|python_tag|>${one("add", ADD)}`), [content("Checking."), ...call(0, "add", ADD)], "parsed");
  });

  test("JSON that is not a call, and a call-like object mid-answer, are content", () => {
    expectCalls(parseEveryWay("llama3", '{"city": "Paris"}'), [content('{"city": "Paris"}')], "none");
    const mid = `The call would be ${one("add", ADD)}`;
    expectCalls(parseEveryWay("llama3", mid), [content(mid)], "none");
  });

  test("broken JSON and unknown tools fall back to content", () => {
    const broken = '{"name": "add", "parameters": {"a": 1,';
    expectCalls(parseEveryWay("llama3", broken), [content(broken)], "fell_back");
    const unknown = one("nope", "{}");
    expectCalls(parseEveryWay("llama3", unknown), [content(unknown)], "fell_back");
  });
});

describe("mistral", () => {
  test("the v3 array form, with and without the space, with ids", () => {
    expectCalls(
      parseEveryWay("mistral", `[TOOL_CALLS] [{"name": "get_weather", "arguments": ${WEATHER}}]`),
      call(0, "get_weather", WEATHER),
      "parsed",
    );
    const withIds = `[TOOL_CALLS][{"name": "get_weather", "arguments": ${WEATHER}, "id": "abcDEF123"}, {"id": "x", "name": "add", "arguments": ${ADD}}]`;
    expectCalls(parseEveryWay("mistral", withIds), [...call(0, "get_weather", WEATHER), ...call(1, "add", ADD)], "parsed");
  });

  test("the newer NAME[ARGS] form, one marker per call, with an optional [CALL_ID]", () => {
    const text = `[TOOL_CALLS]get_weather[ARGS]${WEATHER}[TOOL_CALLS]add[CALL_ID]a1b2c3d4e[ARGS]${ADD}`;
    expectCalls(parseEveryWay("mistral", text), [...call(0, "get_weather", WEATHER), ...call(1, "add", ADD)], "parsed");
  });

  test("content before the calls", () => {
    expectCalls(
      parseEveryWay("mistral", `I'll add them. [TOOL_CALLS] [{"name": "add", "arguments": ${ADD}}]`),
      [content("I'll add them."), ...call(0, "add", ADD)],
      "parsed",
    );
  });

  test("broken JSON, an unknown tool and a bad name fall back to content", () => {
    for (const text of [
      `[TOOL_CALLS] [{"name": "add", "arguments": {"a": }}]`,
      `[TOOL_CALLS] [{"name": "add", "arguments": ${ADD}}, {"name": "nope", "arguments": {}}]`,
      `[TOOL_CALLS]nope[ARGS]{}`,
      `[TOOL_CALLS]add[ARGS][1]`,
      `[TOOL_CALLS]add(1, 2)`,
    ])
      expectCalls(parseEveryWay("mistral", text), [content(text)], "fell_back");
  });
});

describe("harmony", () => {
  test("analysis then final", () => {
    const text = "<|channel|>analysis<|message|>User says hi.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!";
    expectCalls(parseEveryWay("harmony", text), [reasoning("User says hi."), content("Hello there!")], "none");
    expectCalls(parseEveryWay("harmony", `${text}<|return|>`), [reasoning("User says hi."), content("Hello there!")], "none");
  });

  test("a call, with the recipient after or before the channel, with or without <|constrain|>", () => {
    for (const text of [
      `<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>${WEATHER}`,
      `<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>${WEATHER}<|call|>`,
      ` to=functions.get_weather<|channel|>commentary json<|message|>${WEATHER}<|call|>`,
      `<|channel|>commentary to=functions.get_weather<|message|>${WEATHER}`,
    ])
      expectCalls(parseEveryWay("harmony", text), call(0, "get_weather", WEATHER), "parsed");
  });

  test("analysis, then a call; a preamble is content", () => {
    const text =
      "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary<|message|>Checking…<|end|>" +
      `<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>${WEATHER}<|call|>`;
    expectCalls(parseEveryWay("harmony", text), [reasoning("Need weather."), content("Checking…"), ...call(0, "get_weather", WEATHER)], "parsed");
  });

  test("a response_format answer: JSON in the final channel is content", () => {
    expectCalls(parseEveryWay("harmony", '<|channel|>final<|message|>{"a": 1}'), [content('{"a": 1}')], "none");
  });

  test("text without any header is content", () => {
    expectCalls(parseEveryWay("harmony", "Just text <|chan"), [content("Just text <|chan")], "none");
  });

  test("broken arguments and unknown recipients fall back to content", () => {
    for (const text of [
      `<|channel|>commentary to=functions.add <|constrain|>json<|message|>{"a": 1`,
      `<|channel|>commentary to=functions.nope <|constrain|>json<|message|>{}`,
      `<|channel|>commentary to=browser.search<|message|>{"q": "x"}`,
    ])
      expectCalls(parseEveryWay("harmony", text), [content(text)], "fell_back");
  });

  test("preserved tokens and stops", () => {
    assert.deepEqual([...toolFormatFor("harmony").stops].sort(), ["<|call|>", "<|return|>"]);
    assert.ok(toolFormatFor("harmony").preservedTokens.includes("<|channel|>"));
    assert.ok(toolFormatFor("hermes").preservedTokens.includes("<tool_call>"));
    assert.ok(toolFormatFor("mistral").preservedTokens.includes("[TOOL_CALLS]"));
  });
});
