/**
 * The tool-format grammars against llama.cpp itself: every grammar must load, and whatever a random-weight model
 * writes under it (temperature 1, several seeds) must read back through the family's parser as valid calls whose
 * arguments the tool's schema accepts — the grammar and the parser agree on the syntax.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Ajv } from "ajv";
import { getLlama, LlamaCompletion, LlamaLogLevel, type Llama, type LlamaModel } from "node-llama-cpp";
import { GbnfBuilder } from "../../src/chat/json-schema/gbnf.js";
import { toolFormatFor, type ForcedChoice, type GrammarOptions } from "../../src/chat/tools/formats.js";
import { TOOL_FAMILIES, type JsonSchema, type OutputEvent, type ToolDefinition, type ToolFamily } from "../../src/chat/types.js";
import { writeTinyLlamaModel } from "../../src/gguf/fixtures.js";

const TOOLS: ToolDefinition[] = [
  {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { enum: ["Paris", "Oslo"] }, unit: { type: "string", enum: ["C", "F"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
  {
    name: "add",
    parameters: {
      type: "object",
      properties: { a: { type: "integer", minimum: 0, maximum: 9 }, b: { type: "integer", minimum: -3, maximum: 3 } },
      required: ["a", "b"],
      additionalProperties: false,
    },
  },
  { name: "ping", parameters: { type: "object", properties: {}, additionalProperties: false } },
];
const RESPONSE: JsonSchema = {
  type: "object",
  properties: { ok: { type: "boolean" }, n: { type: "integer", minimum: 1, maximum: 5 } },
  required: ["ok", "n"],
  additionalProperties: false,
};
const SEEDS = [1, 2, 3];
/** A short bound keeps random-weight thinking quick; the grammar's shape is the same at any bound. */
const THINKING: GrammarOptions = { thinking: true, maxThinkingChars: 48 };

const ajv = new Ajv({ strict: false });
const validators = new Map(TOOLS.map((t) => [t.name, ajv.compile(t.parameters as object)]));

let dir = "";
let llama: Llama;
let model: LlamaModel;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lmx-tool-grammars-"));
  const path = join(dir, "tiny.gguf");
  await writeTinyLlamaModel(path);
  llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: path });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

/** Generates under `grammarText` with one seed; fails if the grammar did not finish within the token bound. */
async function generate(grammarText: string, seed: number): Promise<string> {
  const grammar = await llama.createGrammar({ grammar: grammarText });
  const context = await model.createContext({ contextSize: 2048, threads: 1 });
  try {
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    const result = await completion.generateCompletionWithMeta("Call a tool:", { grammar, temperature: 1, seed, maxTokens: 1500 });
    assert.notEqual(result.metadata.stopReason, "maxTokens", `the grammar did not finish: ${JSON.stringify(result.response)}`);
    return result.response;
  } finally {
    await context.dispose();
  }
}

function parseOutput(family: ToolFamily, text: string, thinking: GrammarOptions["thinking"]): { events: OutputEvent[]; outcome: string } {
  let n = 0;
  const parser = toolFormatFor(family).parser({ tools: TOOLS, forced: true, newId: () => `call_${n++}`, thinking });
  const events = [...parser.push(text)];
  const done = parser.finish();
  return { events: [...events, ...done.events], outcome: done.outcome };
}

function assertCalls(family: ToolFamily, text: string, opts: GrammarOptions, allowed: readonly string[], parallel: boolean): void {
  const { events, outcome } = parseOutput(family, text, opts.thinking);
  const where = `${family} output ${JSON.stringify(text)}`;
  assert.equal(outcome, "forced", where);
  assert.deepEqual(
    events.filter((e) => e.type === "content"),
    [],
    where,
  );
  const starts = events.filter((e) => e.type === "tool_call_start");
  if (parallel) assert.ok(starts.length >= 1, where);
  else assert.equal(starts.length, 1, where);
  for (const start of starts) {
    assert.ok(allowed.includes(start.name), where);
    const args = events
      .filter((e) => e.type === "tool_call_arguments" && e.index === start.index)
      .map((e) => (e as { text: string }).text)
      .join("");
    const validate = validators.get(start.name);
    assert.ok(validate?.(JSON.parse(args)), `${where}: ${ajv.errorsText(validate?.errors)}`);
  }
}

const CASES: { label: string; choice: ForcedChoice; parallel: boolean; opts: GrammarOptions }[] = [
  { label: "required", choice: { kind: "required" }, parallel: false, opts: { thinking: false } },
  { label: "required, parallel", choice: { kind: "required" }, parallel: true, opts: { thinking: false } },
  { label: "named", choice: { kind: "named", name: "add" }, parallel: false, opts: { thinking: false } },
  { label: "required, thinking", choice: { kind: "required" }, parallel: true, opts: THINKING },
];

for (const family of TOOL_FAMILIES) {
  describe(`${family} grammars`, { timeout: 240_000 }, () => {
    for (const c of CASES) {
      test(`${c.label}: every sample reads back as valid calls`, async () => {
        const b = new GbnfBuilder();
        const grammar = b.build(toolFormatFor(family).grammar(b, TOOLS, c.choice, c.parallel, c.opts));
        const allowed = c.choice.kind === "named" ? [c.choice.name] : TOOLS.map((t) => t.name);
        for (const seed of SEEDS) assertCalls(family, await generate(grammar, seed), c.opts, allowed, c.parallel);
      });
    }

    test("response_format: every sample is one JSON value the schema accepts", async () => {
      const validate = ajv.compile(RESPONSE as object);
      for (const opts of [{ thinking: false }, THINKING]) {
        const b = new GbnfBuilder();
        const grammar = b.build(toolFormatFor(family).jsonGrammar(b, RESPONSE, opts));
        for (const seed of SEEDS) {
          const text = await generate(grammar, seed);
          const { events, outcome } = parseOutput(family, text, opts.thinking);
          assert.equal(outcome, "none", text);
          const content = events
            .filter((e) => e.type === "content")
            .map((e) => (e as { text: string }).text)
            .join("");
          assert.ok(validate(JSON.parse(content)), `${family}: ${JSON.stringify(text)}`);
        }
      }
    });
  });
}
