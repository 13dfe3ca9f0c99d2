import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { assertValidJsonSchema, compileValidator } from "../../src/chat/json-schema/validate.js";
import { LmxError } from "../../src/errors/codes.js";

function invalid(schema: unknown): LmxError {
  try {
    assertValidJsonSchema(schema, "tools[1].function.parameters");
  } catch (error) {
    assert.ok(error instanceof LmxError);
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(schema)}`);
}

describe("assertValidJsonSchema", () => {
  test("refuses non-schemas and schemas ajv cannot compile, naming the param", () => {
    for (const schema of [
      null,
      3,
      "object",
      [],
      { type: "strng" },
      { required: "a" },
      { type: "object", properties: { a: 5 } },
      { $ref: "#/$defs/nope" },
    ]) {
      const error = invalid(schema);
      assert.equal(error.code, "invalid_value");
      assert.equal(error.param, "tools[1].function.parameters");
      assert.ok(error.message.startsWith("tools[1].function.parameters is not a valid JSON Schema: "), error.message);
    }
    assert.match(invalid({ type: "strng" }).message, /type/);
  });

  test("accepts ordinary schemas, booleans, annotations and other drafts' $schema", () => {
    for (const schema of [
      true,
      false,
      { type: "object", properties: { a: { type: "string", format: "date" } }, required: ["a"], strict: true, nullable: false },
      { $schema: "http://json-schema.org/draft-07/schema#", type: "object", definitions: { x: { type: "null" } } },
      { type: "array", prefixItems: [{ type: "integer" }], items: false },
    ])
      assert.doesNotThrow(() => assertValidJsonSchema(schema, "p"), JSON.stringify(schema));
  });
});

describe("compileValidator", () => {
  test("null for valid values, a short message otherwise (formats included)", () => {
    const validate = compileValidator({
      type: "object",
      properties: { when: { type: "string", format: "date" }, n: { type: "integer", maximum: 3 } },
      required: ["when"],
      additionalProperties: false,
    });
    assert.equal(validate({ when: "2024-02-28", n: 3 }), null);
    assert.match(validate({ when: "2023-02-30" }) ?? "", /format/);
    assert.match(validate({ when: "2024-01-01", n: 4 }) ?? "", /3/);
    assert.match(validate({}) ?? "", /when/);
    assert.notEqual(validate({ when: "2024-01-01", extra: 1 }), null);
  });

  test("the same schema text gets the same validator; schemas sharing an $id coexist", () => {
    const a = compileValidator({ $id: "https://x/s", type: "string" });
    const b = compileValidator({ $id: "https://x/s", type: "integer" });
    assert.equal(a("s"), null);
    assert.notEqual(b("s"), null);
    assert.equal(b(1), null);
    assert.equal(compileValidator({ $id: "https://x/s", type: "string" })(1) !== null, true);
  });

  test("the cache stays bounded and still answers after evictions", () => {
    for (let i = 0; i < 600; i++) assert.equal(compileValidator({ type: "integer", minimum: i })(i), null);
    assert.notEqual(compileValidator({ type: "integer", minimum: 5 })(4), null);
  });
});
