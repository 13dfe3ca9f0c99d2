import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GbnfBuilder, checkEnforceable } from "../../src/chat/json-schema/gbnf.js";
import { integerRange, numberRange } from "../../src/chat/json-schema/int-range.js";
import { LmxError } from "../../src/errors/codes.js";
import type { JsonSchema } from "../../src/chat/types.js";

function grammar(schema: JsonSchema): string {
  const b = new GbnfBuilder();
  return b.build(b.schema(schema, "v"));
}

/** The body of rule `name` in a grammar text. */
function body(text: string, name: string): string {
  const line = text.split("\n").find((l) => l.startsWith(`${name} ::= `));
  assert.ok(line, `no rule ${name} in\n${text}`);
  return line.slice(name.length + 5);
}

/** A regular expression equal to a GBNF expression made of literals, classes, groups and repetitions only. */
function toRegex(expr: string): RegExp {
  let out = "";
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i]!;
    if (ch === " ") continue;
    if (ch === '"') {
      const end = expr.indexOf('"', i + 1);
      out += expr.slice(i + 1, end).replace(/[-.*+?^${}()|[\]\\]/g, "\\$&");
      i = end;
    } else if (ch === "[") {
      const end = expr.indexOf("]", i);
      out += expr.slice(i, end + 1);
      i = end;
    } else if ("(){},|?*+0123456789".includes(ch)) out += ch;
    else throw new Error(`not a plain expression: ${expr}`);
  }
  return new RegExp(`^(?:${out})$`);
}

function refusal(schema: JsonSchema, param = "response_format.json_schema.schema"): LmxError {
  try {
    checkEnforceable(schema, param);
  } catch (error) {
    assert.ok(error instanceof LmxError);
    // schema() refuses the same way.
    assert.throws(
      () => new GbnfBuilder().schema(schema, "v", param),
      (e: unknown) => e instanceof LmxError && e.message === error.message,
    );
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(schema)}`);
}

describe("integer and number ranges", () => {
  test("integerRange matches exactly the integers of the interval, written canonically", () => {
    const cases: [bigint, bigint][] = [
      [1n, 5n],
      [0n, 0n],
      [-7n, -3n],
      [-12n, 345n],
      [7n, 1234n],
      [-1000n, -1n],
      [100n, 199n],
      [19n, 91n],
      [-5n, 0n],
    ];
    for (const [lo, hi] of cases) {
      const re = toRegex(integerRange(lo, hi));
      for (let n = -1500; n <= 1500; n++) assert.equal(re.test(String(n)), BigInt(n) >= lo && BigInt(n) <= hi, `${n} in [${lo}, ${hi}]: ${re}`);
      for (const bad of ["-0", "01", "+1", "00", ""]) assert.equal(re.test(bad), false, `${bad} for [${lo}, ${hi}]`);
    }
  });

  test("zod's safe-integer bounds stay inside 15 digits; a huge minimum keeps its own digit count", () => {
    const b = new GbnfBuilder();
    const text = b.build(b.schema({ type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 }, "v"));
    const re = toRegex(body(text, "v"));
    for (const ok of ["0", "-1", "999999999999999", "-999999999999999", "42"]) assert.ok(re.test(ok), ok);
    for (const bad of ["1000000000000000", "-0", "007"]) assert.ok(!re.test(bad), bad);
    const big = toRegex(body(grammar({ type: "integer", minimum: 1e16 }), "v"));
    assert.ok(big.test("10000000000000000") && big.test("99999999999999999") && !big.test("9999999999999999"));
  });

  test("exclusive and fractional integer bounds round inward", () => {
    const re = toRegex(body(grammar({ type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 4.5 }), "v"));
    assert.deepEqual(
      ["0", "1", "2", "3", "4", "5"].filter((s) => re.test(s)),
      ["1", "2", "3", "4"],
    );
    const neg = toRegex(body(grammar({ type: "integer", minimum: -2.5, maximum: -0.5 }), "v"));
    assert.deepEqual(
      ["-3", "-2", "-1", "0"].filter((s) => neg.test(s)),
      ["-2", "-1"],
    );
  });

  test("numberRange stays within whole-number bounds, inclusive or exclusive", () => {
    const samples = ["0", "-0.5", "0.5", "1", "1.25", "2", "2.5", "3", "-1", "-1.5", "-2", "-2.75", "-3", "10", "0.0", "1.50"];
    const cases = [
      { minimum: 0 },
      { exclusiveMinimum: 0 },
      { minimum: -2, maximum: 2 },
      { exclusiveMinimum: -2, exclusiveMaximum: 3 },
      { minimum: 1, exclusiveMaximum: 2 },
      { maximum: -1 },
    ];
    for (const bounds of cases) {
      const expr = numberRange(bounds);
      assert.ok(expr);
      const re = toRegex(expr);
      for (const s of samples) {
        if (!re.test(s)) continue;
        const v = Number(s);
        const ok =
          (bounds.minimum === undefined || v >= bounds.minimum) &&
          ("maximum" in bounds && bounds.maximum !== undefined ? v <= bounds.maximum : true) &&
          ("exclusiveMinimum" in bounds && bounds.exclusiveMinimum !== undefined ? v > bounds.exclusiveMinimum : true) &&
          ("exclusiveMaximum" in bounds && bounds.exclusiveMaximum !== undefined ? v < bounds.exclusiveMaximum : true);
        assert.ok(ok, `${s} matched ${JSON.stringify(bounds)}`);
      }
    }
    const nonNegative = toRegex(numberRange({ minimum: 0 })!);
    for (const s of ["0", "3", "0.5", "12.25"]) assert.ok(nonNegative.test(s), s);
    for (const s of ["-1", "-0.5", "1e5", "1.0"]) assert.ok(!nonNegative.test(s), s);
    assert.equal(numberRange({ minimum: 2, maximum: 1 }), null);
  });
});

describe("GbnfBuilder grammar text", () => {
  test("primitive types, defined once and shared", () => {
    const b = new GbnfBuilder();
    const s = b.schema({ type: "string" }, "s");
    const n = b.schema({ type: "number" }, "n");
    const i = b.schema({ type: "integer" }, "i");
    const text = b.build(`${s} ${n} ${i} ${b.schema({ type: "boolean" }, "t")} ${b.schema({ type: "null" }, "z")}`);
    assert.equal(body(text, "s"), "json-string");
    assert.equal(body(text, "json-string"), String.raw`"\"" json-char* "\""`);
    assert.match(body(text, "json-number"), /\[0-9\]\{0,14\}.*\[0-9\]\{1,15\}.*\[0-9\]\{1,2\}/);
    assert.equal(body(text, "i"), "json-integer");
    assert.equal(body(text, "z"), '"null"');
    assert.equal(text.split("\n").filter((l) => l.startsWith("json-string ::=")).length, 1);
    assert.ok(text.startsWith(`root ::= s n i t z\n`));
  });

  test("objects: declared order, required always, optional may be left out, commas in the right place", () => {
    const text = grammar({
      type: "object",
      properties: { a: { type: "boolean" }, b: { type: "null" }, c: { type: "boolean" } },
      required: ["b"],
      additionalProperties: false,
    });
    assert.equal(body(text, "v"), `"{" (v-a-kv v-rest-1 | v-b-kv v-rest-2) "}"`);
    assert.equal(body(text, "v-rest-1"), `"," ws v-b-kv v-rest-2`);
    assert.equal(body(text, "v-rest-2"), `("," ws v-c-kv)?`);
    assert.equal(body(text, "v-a-kv"), String.raw`"\"a\"" ":" ws v-a`);
    assert.equal(body(text, "ws"), `" "?`);
  });

  test("objects with only optional properties may be empty; extra properties are never generated", () => {
    const text = grammar({ type: "object", properties: { a: { type: "null" }, b: { type: "null" } } });
    assert.equal(body(text, "v"), `"{" (v-a-kv v-rest-1 | v-b-kv)? "}"`);
    assert.equal(body(text, "v-rest-1"), `("," ws v-b-kv)?`);
  });

  test("additionalProperties alone generates key/value pairs; required names without properties use it", () => {
    const free = grammar({ type: "object", additionalProperties: { type: "integer" } });
    assert.equal(body(free, "v"), `"{" (v-kv ("," ws v-kv)*)? "}"`);
    assert.equal(body(free, "v-kv"), `json-string ":" ws v-value`);
    assert.equal(body(free, "v-value"), "json-integer");
    const req = grammar({ type: "object", required: ["id"], additionalProperties: { type: "boolean" } });
    assert.equal(body(req, "v"), `"{" v-id-kv "}"`);
    assert.equal(body(grammar({ type: "object", additionalProperties: false }), "v"), `"{" "}"`);
  });

  test("arrays: items with minItems/maxItems, prefixItems, items false", () => {
    assert.equal(body(grammar({ type: "array", items: { type: "null" }, minItems: 1, maxItems: 3 }), "v"), `"[" v-item ("," ws v-item){0,2} "]"`);
    assert.equal(body(grammar({ type: "array", items: { type: "null" } }), "v"), `"[" (v-item ("," ws v-item)*)? "]"`);
    assert.equal(body(grammar({ type: "array", items: { type: "null" }, maxItems: 2 }), "v"), `"[" (v-item ("," ws v-item)?)? "]"`);
    const tuple = grammar({ type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], items: false });
    assert.equal(body(tuple, "v"), `"[" v-0 "," ws v-1 "]"`);
    const more = grammar({ type: "array", prefixItems: [{ type: "null" }], items: { type: "boolean" }, minItems: 2, maxItems: 4 });
    assert.equal(body(more, "v"), `"[" v-0 ("," ws v-item){1,3} "]"`);
  });

  test("enum and const: literals of the JSON text, filtered by type", () => {
    assert.equal(body(grammar({ enum: ["a", 1, null, { k: [true] }] }), "v"), String.raw`"\"a\"" | "1" | "null" | "{\"k\":[true]}"`);
    assert.equal(body(grammar({ type: "string", enum: ["a", 1] }), "v"), String.raw`"\"a\""`);
    assert.equal(body(grammar({ const: 'say "hi"\n' }), "v"), String.raw`"\"say \\\"hi\\\"\\n\""`);
  });

  test("anyOf, oneOf (as anyOf), type arrays, nullable, allOf with one member", () => {
    assert.equal(body(grammar({ anyOf: [{ type: "string" }, { type: "null" }] }), "v"), "v-0 | v-1");
    assert.equal(body(grammar({ oneOf: [{ type: "boolean" }, { type: "integer", minimum: 0, maximum: 3 }] }), "v"), "v-0 | v-1");
    assert.equal(body(grammar({ type: ["string", "null"], maxLength: 2 }), "v"), String.raw`("\"" json-char{0,2} "\"") | ("null")`);
    assert.equal(body(grammar({ type: "boolean", nullable: true }), "v"), `(json-boolean) | "null"`);
    const merged = grammar({ type: "object", allOf: [{ properties: { x: { type: "null" } }, required: ["x"] }] });
    assert.equal(body(merged, "v"), `"{" v-x-kv "}"`);
    // Sibling keywords apply to every alternative.
    const sib = grammar({ type: "string", anyOf: [{ maxLength: 1 }, { format: "uuid" }] });
    assert.equal(body(sib, "v-0"), String.raw`"\"" json-char? "\""`);
    assert.equal(body(sib, "v-1"), "json-uuid");
  });

  test("$ref to $defs, definitions and the root, recursion included", () => {
    const tree = grammar({
      type: "object",
      properties: { v: { $ref: "#/definitions/leaf" }, kids: { type: "array", items: { $ref: "#" }, maxItems: 2 } },
      required: ["v"],
      definitions: { leaf: { type: "integer", minimum: 1, maximum: 5 } },
    });
    assert.equal(body(tree, "v-v"), "ref-leaf");
    assert.equal(body(tree, "ref-leaf"), "[1-5]");
    assert.equal(body(tree, "v-kids-item"), "root-ref");
    assert.match(body(tree, "root-ref"), /^"\{" /);
    const defs = grammar({ $defs: { "a/b": { type: "null" } }, $ref: "#/$defs/a~1b" });
    assert.equal(body(defs, "v"), "ref-a-1b");
  });

  test("strings: bounded lengths and formats", () => {
    assert.equal(body(grammar({ type: "string", minLength: 2, maxLength: 5 }), "v"), String.raw`"\"" json-char{2,5} "\""`);
    assert.equal(body(grammar({ type: "string", minLength: 1 }), "v"), String.raw`"\"" json-char+ "\""`);
    for (const [format, rule] of [
      ["date", "json-date"],
      ["time", "json-time"],
      ["date-time", "json-date-time"],
      ["uuid", "json-uuid"],
    ] as const) {
      const text = grammar({ type: "string", format });
      assert.equal(body(text, "v"), rule);
    }
    // No lone surrogate escapes: a pair would count as one character and break minLength.
    assert.match(body(grammar({ type: "string" }), "json-char"), /\[dD\] \[0-7\].*$/);
    assert.ok(body(grammar({ type: "string" }), "json-char").startsWith(String.raw`[\x20\x21\x23-\x5B\x5D-\x7E\x80-\uD7FF\uE000-\U0010FFFF]`));
  });

  test("literal, rule and build compose a tool-call root around a schema", () => {
    const b = new GbnfBuilder();
    const args = b.schema({ type: "object", properties: { city: { enum: ["Paris"] } }, required: ["city"] }, "get-weather-args");
    const named = b.rule("call", `${b.literal('<tool_call>\n{"name": "get_weather", "arguments": ')} ${args} ${b.literal("}\n</tool_call>")}`);
    assert.equal(b.rule("call", '"x"'), "call-2");
    const text = b.build(`${named} | ${b.anyObject()}`);
    assert.ok(text.startsWith("root ::= call | json-object\n"));
    assert.equal(body(text, "call"), String.raw`"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " get-weather-args "}\n</tool_call>"`);
    assert.equal(b.literal("a\\b\t\u0001"), String.raw`"a\\b\t\x01"`);
    assert.equal(b.rule("root", '"r"'), "root-2");
  });

  test("schemas nothing satisfies are invalid_value naming the param and place", () => {
    const unsat = (schema: JsonSchema): LmxError => {
      try {
        new GbnfBuilder().schema(schema, "v", "tools[0].function.parameters");
      } catch (error) {
        assert.ok(error instanceof LmxError);
        return error;
      }
      assert.fail("accepted");
    };
    const e = unsat({ type: "object", properties: { n: { type: "integer", minimum: 5, maximum: 4 } }, required: ["n"] });
    assert.equal(e.code, "invalid_value");
    assert.equal(e.param, "tools[0].function.parameters");
    assert.match(e.message, /#\/properties\/n/);
    assert.equal(unsat(false).code, "invalid_value");
    assert.equal(unsat({ type: "string", enum: [1, 2] }).code, "invalid_value");
    assert.equal(unsat({ type: "array", prefixItems: [{ type: "null" }], items: false, minItems: 2 }).code, "invalid_value");
    // An optional property or alternative nothing satisfies is simply never generated.
    assert.doesNotThrow(() => new GbnfBuilder().schema({ type: "object", properties: { n: false, m: { type: "null" } } }, "v"));
    assert.doesNotThrow(() => new GbnfBuilder().schema({ anyOf: [{ type: "integer", minimum: 3, maximum: 2 }, { type: "null" }] }, "v"));
  });

  test("annotations are ignored", () => {
    const annotated = {
      type: "boolean",
      title: "t",
      description: "d",
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://example.com/x",
      $comment: "c",
      examples: [true],
      default: false,
      deprecated: false,
      readOnly: true,
      writeOnly: false,
      strict: true,
    };
    assert.equal(body(grammar(annotated), "v"), "json-boolean");
  });
});

describe("checkEnforceable refusals", () => {
  const param = "response_format.json_schema.schema";
  const cases: [string, JsonSchema, string][] = [
    ["pattern", { type: "object", properties: { s: { type: "string", pattern: "^a" } } }, "#/properties/s"],
    ["patternProperties", { type: "object", patternProperties: { "^x": {} } }, "#"],
    ["propertyNames", { type: "object", propertyNames: { maxLength: 3 } }, "#"],
    ["not", { not: { type: "null" } }, "#"],
    ["if", { if: { type: "string" }, then: { maxLength: 2 } }, "#"],
    ["uniqueItems", { type: "array", items: { type: "integer" }, uniqueItems: true }, "#"],
    ["multipleOf", { type: "integer", multipleOf: 2 }, "#"],
    ["contains", { type: "array", contains: { type: "null" } }, "#"],
    ["minProperties", { type: "object", minProperties: 1 }, "#"],
    ["maxProperties", { type: "object", maxProperties: 1 }, "#"],
    ["dependentRequired", { type: "object", dependentRequired: { a: ["b"] } }, "#"],
    ["minimum", { type: "number", minimum: 0.5 }, "#"],
    ["exclusiveMaximum", { type: "object", properties: { p: { exclusiveMaximum: 1.5 } } }, "#/properties/p"],
    ["format", { type: "string", format: "email" }, "#"],
    ["$ref", { $ref: "https://example.com/schema.json" }, "#"],
    ["$ref", { $ref: "#/$defs/missing" }, "#"],
    ["allOf", { allOf: [{ type: "object" }, { required: ["a"] }] }, "#"],
    ["unevaluatedProperties", { type: "object", unevaluatedProperties: false }, "#"],
    ["x-custom", { type: "string", "x-custom": 1 }, "#"],
    ["maxLength", { type: "string", format: "date", maxLength: 5 }, "#"],
    ["pattern", { type: "array", items: { anyOf: [{ type: "null" }, { type: "string", pattern: "x" }] } }, "#/items/anyOf/1"],
    ["pattern", { $defs: { unused: { type: "string", pattern: "x" } }, type: "null" }, "#/$defs/unused"],
  ];
  for (const [keyword, schema, where] of cases) {
    test(`refuses '${keyword}' at ${where}`, () => {
      const error = refusal(schema, param);
      assert.equal(error.code, "unsupported_parameter");
      assert.equal(error.param, param);
      assert.ok(
        error.message.startsWith(`${param}: the JSON Schema keyword '${keyword}' at ${where} cannot be enforced by the grammar`),
        error.message,
      );
      assert.match(error.message, /remove it/);
    });
  }

  test("a constraining keyword beside $ref is refused; an annotation beside it is not", () => {
    const error = refusal({ $ref: "#/$defs/a", $defs: { a: { type: "string" } }, maxLength: 3 });
    assert.match(error.message, /'maxLength' at # cannot be enforced/);
    assert.doesNotThrow(() => checkEnforceable({ $ref: "#/$defs/a", description: "d", $defs: { a: { type: "string" } } }, param));
  });

  test("anyOf siblings that overlap a member's keywords are refused at generation", () => {
    assert.throws(
      () => new GbnfBuilder().schema({ type: "string", maxLength: 3, anyOf: [{ maxLength: 2 }, { type: "null" }] }, "v", param),
      (e: unknown) => e instanceof LmxError && e.code === "unsupported_parameter" && /'anyOf' at #/.test(e.message) && e.param === param,
    );
  });

  test("integer bounds may be fractional; enforced keywords pass", () => {
    assert.doesNotThrow(() => checkEnforceable({ type: "integer", minimum: 0.5, exclusiveMaximum: 9.5 }, param));
    assert.doesNotThrow(() => checkEnforceable({ type: "array", items: { type: "string" }, uniqueItems: false }, param));
  });
});
