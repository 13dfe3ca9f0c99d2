/**
 * JSON Schema → GBNF (llama.cpp's grammar format), composable: a tool-call grammar embeds one schema per tool
 * inside the family's call syntax. The output is always one JSON value valid against the schema, laid out compactly
 * (at most one space after `:` and `,`, no newlines) with bounded numbers, so whatever the weights the text parses.
 *
 * The grammar generates a valid subset of what a schema allows: declared properties only, in declared order;
 * `oneOf` is generated as `anyOf` (exclusivity cannot be enforced by a grammar; overlapping members are the
 * client's problem); unbounded numbers stop at 15 digits. Keywords it cannot enforce are refused up front
 * (`checkEnforceable`), and a schema nothing satisfies is an `invalid_value`.
 */
import { LmxError } from "../../errors/codes.js";
import type { JsonSchema } from "../types.js";
import {
  checkEnforceable,
  constrainingKeys,
  escapePointerToken,
  isSchemaObject,
  pointerText,
  resolveLocalRef,
  unenforceable,
} from "./enforceable.js";
import { integerInterval, integerRange, numberRange, type NumericBounds } from "./int-range.js";

export { checkEnforceable } from "./enforceable.js";

/** The JSON value grammar every schema builds on; shared by name so composed grammars define them once. */
const PRIMITIVES: Readonly<Record<string, string>> = {
  ws: `" "?`,
  // Unicode scalar values only: llama.cpp decodes surrogates and code points past U+10FFFF from invalid UTF-8,
  // which would come out as several U+FFFD and break maxLength.
  "json-char": String.raw`[\x20\x21\x23-\x5B\x5D-\x7E\x80-\uD7FF\uE000-\U0010FFFF] | [\\] (["\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))`,
  "json-string": String.raw`"\"" json-char* "\""`,
  "json-number": `"-"? ("0" | [1-9] [0-9]{0,14}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})?`,
  "json-integer": `"0" | "-"? [1-9] [0-9]{0,14}`,
  "json-boolean": `"true" | "false"`,
  "json-value": `json-object | json-array | json-string | json-number | json-boolean | "null"`,
  "json-object": `"{" (json-string ":" ws json-value ("," ws json-string ":" ws json-value)*)? "}"`,
  "json-array": `"[" (json-value ("," ws json-value)*)? "]"`,
  // Calendar-valid dates without 29 February (every other day of the Gregorian calendar exists in every year).
  "json-date-body": `[0-9]{4} "-" (("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | "1" [0-9] | "2" [0-8]) | ("0" [13-9] | "1" [0-2]) "-" ("29" | "30") | ("0" [13578] | "1" [02]) "-31")`,
  "json-time-body": `([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])`,
  "json-date": String.raw`"\"" json-date-body "\""`,
  "json-time": String.raw`"\"" json-time-body "\""`,
  "json-date-time": String.raw`"\"" json-date-body "T" json-time-body "\""`,
  "json-uuid": String.raw`"\"" [0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12} "\""`,
};

/** Which primitive rules a primitive's body uses, so adding one adds what it needs. */
const PRIMITIVE_DEPS: Readonly<Record<string, readonly string[]>> = {
  "json-string": ["json-char"],
  "json-value": ["json-object", "json-array", "json-string", "json-number", "json-boolean"],
  "json-object": ["json-string", "ws", "json-value"],
  "json-array": ["json-value", "ws"],
  "json-date": ["json-date-body"],
  "json-time": ["json-time-body"],
  "json-date-time": ["json-date-body", "json-time-body"],
};

const FORMAT_RULES: Readonly<Record<string, string>> = {
  date: "json-date",
  time: "json-time",
  "date-time": "json-date-time",
  uuid: "json-uuid",
};

type JsonType = "string" | "number" | "integer" | "boolean" | "null" | "object" | "array";
const ALL_TYPES: readonly JsonType[] = ["object", "array", "string", "number", "boolean", "null"];

/** Internal rule operations the schema compiler needs from its builder. */
interface RuleSink {
  rule(name: string, body: string): string;
  primitive(name: string): string;
  reserve(name: string): string;
  define(name: string, body: string): void;
  literal(text: string): string;
}

export class GbnfBuilder {
  private readonly bodies = new Map<string, string>();

  /**
   * Rules for one JSON value valid against `schema`; returns the rule's name. `hint` names the rules; `param` is
   * the request field errors name (defaults to `hint`). Throws `unsupported_parameter` for keywords the grammar
   * cannot enforce and `invalid_value` when no value can satisfy the schema.
   */
  schema(schema: JsonSchema, hint: string, param: string = hint): string {
    checkEnforceable(schema, param);
    return new SchemaCompiler(this.sink(), schema, param).named(schema, hint, "");
  }

  /** Any JSON object (response_format json_object). */
  anyObject(): string {
    return this.primitive("json-object");
  }

  /** A GBNF string literal for `text` (quoted and escaped). */
  literal(text: string): string {
    return gbnfLiteral(text);
  }

  /** Adds `name ::= body` (a fresh name if taken) and returns the name used. */
  rule(name: string, body: string): string {
    const used = this.reserve(name);
    this.bodies.set(used, body);
    return used;
  }

  /** The whole grammar, with `root ::= rootBody`. */
  build(rootBody: string): string {
    const lines = [`root ::= ${rootBody}`];
    for (const [name, body] of this.bodies) lines.push(`${name} ::= ${body}`);
    return lines.join("\n") + "\n";
  }

  /** A name nobody has taken yet, derived from `name`. */
  private reserve(name: string): string {
    const base = ruleName(name);
    let used = base;
    for (let n = 2; used === "root" || this.bodies.has(used); n++) used = `${base}-${n}`;
    this.bodies.set(used, "");
    return used;
  }

  /** A primitive by its fixed name, added once (with the primitives it uses). */
  private primitive(name: string): string {
    const body = PRIMITIVES[name];
    if (body === undefined) throw new Error(`no primitive rule ${name}`);
    const existing = this.bodies.get(name);
    if (existing === body) return name;
    if (existing !== undefined) throw new Error(`rule name ${name} is taken by another rule`);
    this.bodies.set(name, body);
    for (const dep of PRIMITIVE_DEPS[name] ?? []) this.primitive(dep);
    return name;
  }

  private sink(): RuleSink {
    return {
      rule: (name, body) => this.rule(name, body),
      primitive: (name) => this.primitive(name),
      reserve: (name) => this.reserve(name),
      define: (name, body) => void this.bodies.set(name, body),
      literal: (text) => gbnfLiteral(text),
    };
  }
}

/** GBNF names are letters, digits and dashes. */
function ruleName(hint: string): string {
  const name = hint
    .replace(/[^A-Za-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-|-$/g, "");
  return name || "r";
}

function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

/** Keyword groups whose meaning depends on each other within one schema object, so they cannot be merged apart. */
const COUPLED: readonly (readonly string[])[] = [
  ["properties", "additionalProperties"],
  ["prefixItems", "items"],
];

/** Compiles one schema document (its own `$ref` root) into rules. */
class SchemaCompiler {
  private readonly refRules = new Map<string, string>();

  constructor(
    private readonly sink: RuleSink,
    private readonly root: JsonSchema,
    private readonly param: string,
  ) {}

  /** A rule for `schema`, named after `hint`. */
  named(schema: JsonSchema, hint: string, pointer: string): string {
    return this.sink.rule(hint, this.expr(schema, hint, pointer));
  }

  private unsatisfiable(pointer: string, why: string): LmxError {
    return new LmxError("invalid_value", `${this.param}: no JSON value satisfies the schema at ${pointerText(pointer)} (${why})`, {
      param: this.param,
    });
  }

  /** A GBNF expression (alternatives allowed) for one value valid against `schema`. */
  private expr(schema: JsonSchema, hint: string, pointer: string): string {
    if (schema === true) return this.sink.primitive("json-value");
    if (schema === false) throw this.unsatisfiable(pointer, "the schema is false");
    if (schema.nullable === true) {
      const { nullable: _drop, ...rest } = schema;
      return `(${this.expr(rest, hint, pointer)}) | "null"`;
    }
    if (typeof schema.$ref === "string") return this.ref(schema.$ref, pointer);
    if (Array.isArray(schema.allOf) && schema.allOf.length === 1) {
      const { allOf: _drop, ...rest } = schema;
      return this.expr(this.merge(rest, schema.allOf[0] as JsonSchema, "allOf", pointer), hint, pointer + "/allOf/0");
    }
    const choice = Array.isArray(schema.anyOf) ? "anyOf" : Array.isArray(schema.oneOf) ? "oneOf" : undefined;
    if (choice !== undefined) return this.alternatives(schema, choice, hint, pointer);
    if (schema.enum !== undefined || schema.const !== undefined) return this.enumeration(schema, pointer);
    const types = this.types(schema);
    const alts: string[] = [];
    let firstError: unknown;
    for (const type of types) {
      try {
        alts.push(this.typed(type, schema, types.length > 1 ? `${hint}-${type}` : hint, pointer));
      } catch (error) {
        if (!(error instanceof LmxError && error.code === "invalid_value")) throw error;
        firstError ??= error;
      }
    }
    if (alts.length === 0) throw firstError ?? this.unsatisfiable(pointer, "no type fits");
    return alts.length === 1 ? alts[0]! : alts.map((a) => `(${a})`).join(" | ");
  }

  private ref(ref: string, pointer: string): string {
    const existing = this.refRules.get(ref);
    if (existing !== undefined) return existing;
    const target = resolveLocalRef(this.root, ref);
    if (target === undefined) throw unenforceable(this.param, "$ref", pointer, `'${ref}' is not a reference within this schema`);
    // Named before its body is built, so a recursive reference finds the rule instead of recursing forever.
    const hint = ref === "#" ? "root-ref" : "ref" + target.pointer.replace(/\/(\$defs|definitions)\//g, "/");
    const name = this.sink.reserve(hint);
    this.refRules.set(ref, name);
    this.sink.define(name, this.expr(target.schema, name, target.pointer));
    return name;
  }

  /** Shallow conjunction of two schema objects; refused where keys overlap or depend on each other. */
  private merge(outer: Record<string, unknown>, inner: JsonSchema, keyword: string, pointer: string): JsonSchema {
    if (inner === false) return false;
    if (inner === true) return outer;
    const outerKeys = constrainingKeys(outer);
    if (outerKeys.length === 0) return { ...inner };
    const innerKeys = constrainingKeys(inner);
    const clash =
      outerKeys.find((key) => innerKeys.includes(key)) ??
      COUPLED.flatMap((group) => (group.some((k) => outerKeys.includes(k)) && group.some((k) => innerKeys.includes(k)) ? [group[0]!] : []))[0] ??
      (innerKeys.includes("$ref") ? "$ref" : undefined);
    if (clash !== undefined) throw unenforceable(this.param, keyword, pointer, `'${clash}' both beside ${keyword} and inside it`);
    return { ...outer, ...inner };
  }

  private alternatives(schema: Record<string, unknown>, choice: "anyOf" | "oneOf", hint: string, pointer: string): string {
    const { [choice]: members, ...rest } = schema;
    const alts: string[] = [];
    let firstError: unknown;
    (members as JsonSchema[]).forEach((member, i) => {
      const at = `${pointer}/${choice}/${i}`;
      try {
        alts.push(this.named(this.merge(rest, member, choice, pointer), `${hint}-${i}`, at));
      } catch (error) {
        // An alternative nothing satisfies is simply never taken.
        if (!(error instanceof LmxError && error.code === "invalid_value")) throw error;
        firstError ??= error;
      }
    });
    if (alts.length === 0) throw firstError ?? this.unsatisfiable(pointer, `${choice} is empty`);
    return alts.join(" | ");
  }

  /** enum/const: the listed values that also pass the sibling keywords this can check locally. */
  private enumeration(schema: Record<string, unknown>, pointer: string): string {
    let values: unknown[] = Array.isArray(schema.enum) ? schema.enum : [schema.const];
    if (schema.enum !== undefined && schema.const !== undefined) values = values.filter((v) => jsonEqual(v, schema.const));
    const types = schema.type === undefined ? undefined : this.types(schema);
    const kept = values.filter((value) => (types === undefined || types.some((t) => hasType(value, t))) && withinLocalLimits(value, schema));
    if (kept.length === 0) throw this.unsatisfiable(pointer, "no enum/const value fits the other keywords");
    return kept.map((value) => this.sink.literal(JSON.stringify(value))).join(" | ");
  }

  /** Declared types, or the types the keywords imply (a schema of string keywords only generates strings). */
  private types(schema: Record<string, unknown>): JsonType[] {
    const declared = typeof schema.type === "string" ? [schema.type] : Array.isArray(schema.type) ? (schema.type as string[]) : undefined;
    let types: JsonType[];
    if (declared !== undefined) types = declared as JsonType[];
    else {
      const has = (...keys: string[]): boolean => keys.some((key) => schema[key] !== undefined);
      types = [];
      if (has("properties", "required", "additionalProperties")) types.push("object");
      if (has("items", "prefixItems", "minItems", "maxItems")) types.push("array");
      if (has("minLength", "maxLength", "format")) types.push("string");
      if (has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) types.push("number");
      if (types.length === 0) types = [...ALL_TYPES];
    }
    // Every integer is a number: generating both would only duplicate alternatives.
    return types.includes("number") ? types.filter((t) => t !== "integer") : types;
  }

  private typed(type: JsonType, schema: Record<string, unknown>, hint: string, pointer: string): string {
    switch (type) {
      case "null":
        return `"null"`;
      case "boolean":
        return this.sink.primitive("json-boolean");
      case "string":
        return this.string(schema, pointer);
      case "integer": {
        const bounds = numericBounds(schema);
        if (!hasBounds(bounds)) return this.sink.primitive("json-integer");
        const interval = integerInterval(bounds);
        if (interval === null) throw this.unsatisfiable(pointer, "no integer lies within the bounds");
        return integerRange(interval[0], interval[1]);
      }
      case "number": {
        const bounds = numericBounds(schema);
        if (!hasBounds(bounds)) return this.sink.primitive("json-number");
        const range = numberRange(bounds);
        if (range === null) throw this.unsatisfiable(pointer, "no number lies within the bounds");
        return range;
      }
      case "object":
        return this.object(schema, hint, pointer);
      case "array":
        return this.array(schema, hint, pointer);
    }
  }

  private string(schema: Record<string, unknown>, pointer: string): string {
    if (typeof schema.format === "string") {
      const rule = FORMAT_RULES[schema.format];
      if (rule === undefined) throw unenforceable(this.param, "format", pointer);
      return this.sink.primitive(rule);
    }
    const min = typeof schema.minLength === "number" ? schema.minLength : 0;
    const max = typeof schema.maxLength === "number" ? schema.maxLength : undefined;
    if (max !== undefined && max < min) throw this.unsatisfiable(pointer, "maxLength is below minLength");
    if (min === 0 && max === undefined) return this.sink.primitive("json-string");
    const char = this.sink.primitive("json-char");
    return `"\\"" ${repeat(char, min, max)} "\\""`;
  }

  private object(schema: Record<string, unknown>, hint: string, pointer: string): string {
    const ws = this.sink.primitive("ws");
    const properties = isSchemaObject(schema.properties) ? (schema.properties as Record<string, JsonSchema>) : {};
    const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
    const additional = schema.additionalProperties as JsonSchema | undefined;
    const declared: { name: string; schema: JsonSchema; pointer: string }[] = Object.entries(properties).map(([name, sub]) => ({
      name,
      schema: sub,
      pointer: `${pointer}/properties/${escapePointerToken(name)}`,
    }));
    // Required names without a declared schema take additionalProperties' schema.
    for (const name of required)
      if (!Object.hasOwn(properties, name)) declared.push({ name, schema: additional ?? true, pointer: `${pointer}/additionalProperties` });

    if (declared.length === 0) {
      if (additional === false) return `"{" "}"`;
      const value =
        additional === undefined || additional === true
          ? this.sink.primitive("json-value")
          : this.named(additional, `${hint}-value`, `${pointer}/additionalProperties`);
      const kv = this.sink.rule(`${hint}-kv`, `${this.sink.primitive("json-string")} ":" ${ws} ${value}`);
      return `"{" (${kv} ("," ${ws} ${kv})*)? "}"`;
    }

    const members: { kv: string; required: boolean }[] = [];
    for (const prop of declared) {
      const isRequired = required.has(prop.name);
      if (prop.schema === false) {
        if (isRequired) throw this.unsatisfiable(prop.pointer, `required property '${prop.name}' allows no value`);
        continue;
      }
      let value: string;
      try {
        value = this.named(prop.schema, `${hint}-${prop.name}`, prop.pointer);
      } catch (error) {
        // An optional property nothing satisfies is left out.
        if (!isRequired && error instanceof LmxError && error.code === "invalid_value") continue;
        throw error;
      }
      const kv = this.sink.rule(`${hint}-${prop.name}-kv`, `${this.sink.literal(JSON.stringify(prop.name))} ":" ${ws} ${value}`);
      members.push({ kv, required: isRequired });
    }
    if (members.length === 0) return `"{" "}"`;

    // tails[i]: members i.. after at least one member was written, each behind its comma.
    const tails: string[] = new Array<string>(members.length + 1).fill("");
    for (let i = members.length - 1; i >= 0; i--) {
      const m = members[i]!;
      const item = m.required ? `"," ${ws} ${m.kv}` : `("," ${ws} ${m.kv})?`;
      const body = tails[i + 1] ? `${item} ${tails[i + 1]}` : item;
      tails[i] = i === 0 ? body : this.sink.rule(`${hint}-rest-${i}`, body);
    }
    // The first member written decides the layout: any optional member before the first required one may lead.
    const firsts: string[] = [];
    let allOptional = true;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      firsts.push(tails[i + 1] ? `${m.kv} ${tails[i + 1]}` : m.kv);
      if (m.required) {
        allOptional = false;
        break;
      }
    }
    const inner = firsts.length === 1 ? firsts[0]! : `(${firsts.join(" | ")})`;
    if (!allOptional) return `"{" ${inner} "}"`;
    return firsts.length === 1 ? `"{" (${inner})? "}"` : `"{" ${inner}? "}"`;
  }

  private array(schema: Record<string, unknown>, hint: string, pointer: string): string {
    const ws = this.sink.primitive("ws");
    const prefix = Array.isArray(schema.prefixItems) ? (schema.prefixItems as JsonSchema[]) : [];
    const items = schema.items as JsonSchema | undefined;
    const minItems = typeof schema.minItems === "number" ? schema.minItems : 0;
    const maxItems = typeof schema.maxItems === "number" ? schema.maxItems : undefined;
    if (maxItems !== undefined && maxItems < minItems) throw this.unsatisfiable(pointer, "maxItems is below minItems");
    // Every prefix item is written (as many as maxItems allows); more items only as minItems needs or items allows.
    const written = maxItems === undefined ? prefix.length : Math.min(prefix.length, maxItems);
    const extraMin = Math.max(0, minItems - written);
    let extraMax: number | undefined = maxItems === undefined ? undefined : maxItems - written;
    if (items === false) extraMax = 0;
    else if (items === undefined && prefix.length > 0) extraMax = extraMin; // free items beyond a tuple: none unless needed
    if (extraMax !== undefined && extraMax < extraMin) throw this.unsatisfiable(pointer, "minItems exceeds the items allowed");

    const elements = prefix.slice(0, written).map((sub, i) => this.named(sub, `${hint}-${i}`, `${pointer}/prefixItems/${i}`));
    let extra = "";
    if (extraMax === undefined || extraMax > 0) {
      const item = this.named(items ?? true, `${hint}-item`, `${pointer}/items`);
      const next = `("," ${ws} ${item})`;
      if (elements.length > 0) extra = repeat(next, extraMin, extraMax);
      else if (extraMin > 0) extra = `${item}${repeatSuffix(next, extraMin - 1, extraMax === undefined ? undefined : extraMax - 1)}`;
      else extra = `(${item}${repeatSuffix(next, 0, extraMax === undefined ? undefined : extraMax - 1)})?`;
    }
    const parts = elements.map((e, i) => (i === 0 ? e : `"," ${ws} ${e}`));
    if (extra) parts.push(extra);
    return parts.length ? `"[" ${parts.join(" ")} "]"` : `"[" "]"`;
  }
}

/** `x{min,max}` in GBNF ("" when it can only be empty). */
function repeat(x: string, min: number, max: number | undefined): string {
  if (max === 0) return "";
  if (max === undefined) return min === 0 ? `${x}*` : min === 1 ? `${x}+` : `${x}{${min},}`;
  if (min === max) return min === 1 ? x : `${x}{${min}}`;
  if (min === 0 && max === 1) return `${x}?`;
  return `${x}{${min},${max}}`;
}

function repeatSuffix(x: string, min: number, max: number | undefined): string {
  const r = repeat(x, min, max);
  return r ? ` ${r}` : "";
}

function numericBounds(schema: Record<string, unknown>): NumericBounds {
  const num = (key: string): number | undefined => (typeof schema[key] === "number" ? (schema[key] as number) : undefined);
  return {
    minimum: num("minimum"),
    maximum: num("maximum"),
    exclusiveMinimum: num("exclusiveMinimum"),
    exclusiveMaximum: num("exclusiveMaximum"),
  };
}

function hasBounds(b: NumericBounds): boolean {
  return b.minimum !== undefined || b.maximum !== undefined || b.exclusiveMinimum !== undefined || b.exclusiveMaximum !== undefined;
}

function hasType(value: unknown, type: JsonType): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "boolean":
      return typeof value === "boolean";
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "object":
      return isSchemaObject(value);
    case "array":
      return Array.isArray(value);
  }
}

/** The sibling limits an enum value must also meet (the ones checkable without a validator). */
function withinLocalLimits(value: unknown, schema: Record<string, unknown>): boolean {
  if (typeof value === "string") {
    const length = [...value].length;
    if (typeof schema.minLength === "number" && length < schema.minLength) return false;
    if (typeof schema.maxLength === "number" && length > schema.maxLength) return false;
  }
  if (typeof value === "number") {
    const b = numericBounds(schema);
    if (b.minimum !== undefined && value < b.minimum) return false;
    if (b.maximum !== undefined && value > b.maximum) return false;
    if (b.exclusiveMinimum !== undefined && value <= b.exclusiveMinimum) return false;
    if (b.exclusiveMaximum !== undefined && value >= b.exclusiveMaximum) return false;
  }
  return true;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
