// Proves the grammars are real: llama.cpp parses every generated grammar, and a random-weight model sampling
// under it (greedy and several seeded temperature-1 runs) writes JSON that ajv accepts against the schema.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LlamaCompletion, LlamaLogLevel, getLlama, type Llama, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import { GbnfBuilder } from "../../src/chat/json-schema/gbnf.js";
import { assertValidJsonSchema, compileValidator } from "../../src/chat/json-schema/validate.js";
import { writeTinyLlamaModel } from "../../src/gguf/fixtures.js";
import type { JsonSchema } from "../../src/chat/types.js";

const MAX_TOKENS = 600;
const SEEDS = [1, 2, 3];

const SCHEMAS: Record<string, JsonSchema> = {
  "nested objects with optional properties": {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 8 },
      address: {
        type: "object",
        properties: { city: { enum: ["Paris", "Oslo"] }, zip: { type: "string", minLength: 2, maxLength: 5 } },
        required: ["city"],
        additionalProperties: false,
      },
      ok: { type: "boolean" },
    },
    required: ["address"],
    additionalProperties: false,
  },
  "arrays with minItems and maxItems": {
    type: "object",
    properties: { tags: { type: "array", items: { enum: ["a", "b", "c"] }, minItems: 2, maxItems: 4 } },
    required: ["tags"],
  },
  "tuple with prefixItems": { type: "array", prefixItems: [{ type: "boolean" }, { const: "x" }], items: false },
  "enum of mixed values": { enum: ["red", 7, null, true, { k: [1] }] },
  "anyOf and oneOf": {
    type: "object",
    properties: {
      v: {
        anyOf: [
          { type: "integer", minimum: 0, maximum: 9 },
          { type: "string", maxLength: 3 },
        ],
      },
      w: { oneOf: [{ type: "null" }, { enum: ["x"] }] },
    },
    required: ["v", "w"],
  },
  // Random weights follow a recursive branch as often as any other: the recursion here ends at a one-token choice.
  "recursive list through $ref": {
    $defs: {
      node: {
        anyOf: [
          { const: "end" },
          {
            type: "object",
            properties: { v: { type: "integer", minimum: 1, maximum: 99 }, next: { $ref: "#/$defs/node" } },
            required: ["v", "next"],
            additionalProperties: false,
          },
        ],
      },
    },
    $ref: "#/$defs/node",
  },
  "recursion through the root": {
    type: "object",
    properties: { id: { enum: [1, 2] }, parent: { anyOf: [{ type: "null" }, { $ref: "#" }] } },
    required: ["id", "parent"],
  },
  "integer ranges, negative included": {
    type: "object",
    properties: {
      a: { type: "integer", minimum: -40, maximum: -3 },
      b: { type: "integer", minimum: -12, maximum: 345 },
      c: { type: "integer", exclusiveMinimum: 0, maximum: 5 },
      d: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
      e: { type: "number", minimum: 0, maximum: 3 },
    },
    required: ["a", "b", "c", "d", "e"],
  },
  "strings with length limits": {
    type: "array",
    items: { type: "string", minLength: 1, maxLength: 4 },
    minItems: 1,
    maxItems: 3,
  },
  formats: {
    type: "object",
    properties: {
      day: { type: "string", format: "date" },
      at: { type: "string", format: "time" },
      stamp: { type: "string", format: "date-time" },
      id: { type: "string", format: "uuid" },
    },
    required: ["day", "at", "stamp", "id"],
  },
  "nullable and type arrays": {
    type: "object",
    properties: {
      n: { type: "integer", minimum: 1, maximum: 3, nullable: true },
      t: { type: ["string", "null"], maxLength: 2 },
      z: { type: "number", nullable: true, minimum: 0, maximum: 1 },
    },
    required: ["n", "t", "z"],
  },
};

let dir: string;
let llama: Llama;
let model: LlamaModel;
let context: LlamaContext;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lmx-gbnf-test-"));
  const path = join(dir, "tiny.gguf");
  await writeTinyLlamaModel(path);
  llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath: path });
  context = await model.createContext({ contextSize: 1024, threads: 1 });
});

after(async () => {
  await context?.dispose();
  await model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
  await llama?.dispose();
});

async function generate(grammarText: string, temperature: number, seed?: number): Promise<string> {
  const grammar = await llama.createGrammar({ grammar: grammarText });
  const sequence = context.getSequence();
  try {
    const completion = new LlamaCompletion({ contextSequence: sequence });
    const result = await completion.generateCompletionWithMeta("Answer in JSON:", {
      grammar,
      maxTokens: MAX_TOKENS,
      temperature,
      ...(seed === undefined ? {} : { seed }),
    });
    assert.notEqual(result.metadata.stopReason, "maxTokens", `ran to ${MAX_TOKENS} tokens: ${result.response}`);
    return result.response;
  } finally {
    sequence.dispose();
  }
}

describe("grammars from JSON Schemas constrain a real model", { timeout: 600_000 }, () => {
  for (const [name, rawSchema] of Object.entries(SCHEMAS)) {
    test(name, { timeout: 120_000 }, async () => {
      const schema = rawSchema;
      assertValidJsonSchema(schema, "schema");
      const validate = compileValidator(schema);
      const b = new GbnfBuilder();
      const grammarText = b.build(b.schema(schema, "value"));
      const runs: [number, number | undefined][] = [[0, undefined], ...SEEDS.map((seed): [number, number] => [1, seed])];
      for (const [temperature, seed] of runs) {
        const text = await generate(grammarText, temperature, seed);
        let value: unknown;
        assert.doesNotThrow(() => (value = JSON.parse(text)), `not JSON (t=${temperature}, seed=${seed}): ${text}`);
        assert.equal(validate(value), null, `invalid (t=${temperature}, seed=${seed}): ${text}\n${grammarText}`);
      }
    });
  }

  test("free-form objects (unbounded keys, so no generation under random weights) parse", async () => {
    const b = new GbnfBuilder();
    const map = b.schema({ type: "object", additionalProperties: { type: "integer", minimum: 0, maximum: 9 } }, "map");
    await llama.createGrammar({ grammar: b.build(`${map} | ${b.anyObject()}`) });
  });

  test("a GBNF syntax error fails grammar creation (the check above is meaningful)", async () => {
    await assert.rejects(async () => llama.createGrammar({ grammar: 'root ::= "a" (' }));
  });
});
