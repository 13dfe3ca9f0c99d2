/** The built-in skills' pure parts: arithmetic, unit conversion, the JSONPath subset, time zones, SKILL.md parsing, MCP shapes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { mcpCallResult, mcpTool } from "../../src/api/skills/wire.js";
import { type LmxError } from "../../src/errors/codes.js";
import { arithmeticSkills } from "../../src/skills/builtin/arithmetic.js";
import { describeInstant } from "../../src/skills/builtin/datetime.js";
import { parsePath, queryJson } from "../../src/skills/builtin/json-query.js";
import { convert } from "../../src/skills/builtin/units.js";
import { parseSkillMd } from "../../src/skills/folders.js";
import type { SkillDefinition } from "../../src/skills/types.js";

const context = { signal: new AbortController().signal, caller: "test" };
const arithmetic = (name: string) => arithmeticSkills.find((s) => s.name === name)!;

describe("built-in skills", () => {
  test("arithmetic; divide by zero and overflow are errors naming the field", async () => {
    assert.equal(await arithmetic("add").run({ left: 2, right: 5 }, context), 7);
    assert.equal(await arithmetic("subtract").run({ left: 2, right: 5 }, context), -3);
    assert.equal(await arithmetic("multiply").run({ left: 2.5, right: 4 }, context), 10);
    assert.equal(await arithmetic("divide").run({ left: 1, right: 8 }, context), 0.125);
    await assert.rejects(
      arithmetic("divide").run({ left: 1, right: 0 }, context),
      (e: LmxError) => e.code === "invalid_value" && e.param === "arguments.right",
    );
    await assert.rejects(arithmetic("multiply").run({ left: 1e308, right: 10 }, context), (e: LmxError) => e.code === "invalid_value");
  });

  test("unit_convert: exact factors, temperatures, and no conversion across dimensions", () => {
    assert.equal(convert(1, "in", "cm"), 2.54);
    assert.equal(convert(1, "mi", "m"), 1609.344);
    assert.equal(convert(1, "lb", "g"), 453.59237);
    assert.equal(convert(100, "C", "F"), 212);
    assert.equal(convert(-40, "F", "C"), -40);
    assert.equal(convert(0, "K", "C"), -273.15);
    assert.equal(convert(90, "min", "h"), 1.5);
    assert.equal(convert(0.1 + 0.2, "m", "m"), 0.3);
    assert.throws(
      () => convert(1, "kg", "m"),
      (e: LmxError) => e.param === "arguments.to",
    );
    assert.throws(
      () => convert(-500, "C", "K"),
      (e: LmxError) => e.param === "arguments.value",
    );
  });

  test("json_query: names, indexes, wildcards, slices, unions, descendants; filters refused", () => {
    const doc = {
      store: {
        book: [
          { title: "A", price: 8 },
          { title: "B", price: 12 },
          { title: "C", price: 5 },
        ],
        bike: { price: 20 },
      },
      "odd key": 1,
    };
    assert.deepEqual(queryJson(doc, "$.store.book[0].title"), ["A"]);
    assert.deepEqual(queryJson(doc, "$.store.book[-1].title"), ["C"]);
    assert.deepEqual(queryJson(doc, "$.store.book[*].title"), ["A", "B", "C"]);
    assert.deepEqual(queryJson(doc, "$.store.book[0:2].title"), ["A", "B"]);
    assert.deepEqual(queryJson(doc, "$.store.book[::-1].title"), ["C", "B", "A"]);
    assert.deepEqual(queryJson(doc, "$.store.book[0,2].price"), [8, 5]);
    assert.deepEqual(queryJson(doc, "$..price"), [8, 12, 5, 20]);
    assert.deepEqual(queryJson(doc, "$['odd key']"), [1]);
    assert.deepEqual(queryJson(doc, "$.store.*.price"), [20]);
    assert.deepEqual(queryJson(doc, "$.missing.deeper"), []);
    assert.deepEqual(queryJson(doc, "$"), [doc]);
    for (const bad of ["store.book", "$.store.book[?(@.price < 10)]", "$.a[", "$.a[1:2:0]", "$.a[x]"]) {
      assert.throws(
        () => parsePath(bad),
        (e: LmxError) => e.code === "invalid_value" && e.param === "arguments.path",
        bad,
      );
    }
  });

  test("datetime_now: offsets from the IANA database, unknown zones refused", () => {
    const instant = new Date(Date.UTC(2026, 6, 1, 12, 0, 0, 5));
    assert.equal(describeInstant(instant, "UTC").iso, "2026-07-01T12:00:00.005Z");
    const paris = describeInstant(instant, "Europe/Paris");
    assert.equal(paris.iso, "2026-07-01T14:00:00.005+02:00");
    assert.equal(paris.weekday, "Wednesday");
    assert.equal(describeInstant(new Date(Date.UTC(2026, 0, 1)), "Europe/Paris").utc_offset, "+01:00");
    assert.equal(describeInstant(instant, "Asia/Kolkata").utc_offset, "+05:30");
    assert.throws(
      () => describeInstant(instant, "Not/AZone"),
      (e: LmxError) => e.param === "arguments.time_zone",
    );
  });

  test("SKILL.md: front matter with our optional keys, the body as instructions", () => {
    const parsed = parseSkillMd(
      "---\nname: pdf_tools\ndescription: Works with PDFs.\ncommand: ['./run.sh', '--json']\ntimeout_ms: 5000\n---\n# Use\nDo this.\n",
    );
    assert.equal(parsed.frontMatter.name, "pdf_tools");
    assert.deepEqual(parsed.frontMatter.command, ["./run.sh", "--json"]);
    assert.equal(parsed.body, "# Use\nDo this.");
    assert.throws(() => parseSkillMd("# no front matter"), /front matter/);
    assert.throws(() => parseSkillMd("---\nname: bad name\ndescription: x\n---\n"), /name/);
    assert.throws(() => parseSkillMd("---\nname: ok\n---\n"), /description/);
  });

  test("MCP shapes: non-object results are wrapped as {result}, text is the value's JSON", () => {
    const add: SkillDefinition = {
      name: "add",
      description: "adds",
      parameters: { type: "object" },
      outputSchema: { type: "number" },
      timeoutMs: 1,
      source: "builtin",
      sourceName: "builtin",
      allowInLoop: true,
    };
    assert.deepEqual(mcpTool(add).outputSchema, { type: "object", properties: { result: { type: "number" } }, required: ["result"] });
    assert.deepEqual(mcpCallResult(add, { name: "add", ok: true, value: 7, durationMs: 1 }), {
      content: [{ type: "text", text: "7" }],
      isError: false,
      structuredContent: { result: 7 },
    });
    const untyped = { ...add, outputSchema: undefined };
    assert.equal(mcpTool(untyped).outputSchema, undefined);
    assert.deepEqual(mcpCallResult(untyped, { name: "add", ok: true, value: [1], durationMs: 1 }), {
      content: [{ type: "text", text: "[1]" }],
      isError: false,
    });
    const failed = mcpCallResult(add, { name: "add", ok: false, error: { code: "skill_timeout", message: "late" }, durationMs: 1 });
    assert.equal(failed.isError, true);
    assert.match(failed.content[0]!.text, /skill_timeout/);
  });
});
