/**
 * Which JSON Schema keywords the grammar enforces, and the walk that refuses the rest: a client that sends a
 * constraint we would silently drop gets a 400 naming it, never output that ignores it.
 */
import { LmxError } from "../../errors/codes.js";
import type { JsonSchema } from "../types.js";

/** Keywords that say nothing about validity (OpenAPI's `nullable` is handled: it adds null). */
export const ANNOTATION_KEYWORDS: ReadonlySet<string> = new Set([
  "title",
  "description",
  "$schema",
  "$id",
  "$comment",
  "examples",
  "default",
  "deprecated",
  "readOnly",
  "writeOnly",
  "nullable",
  "strict",
  "$defs",
  "definitions",
]);

/** Keywords the grammar enforces (some with value limits, checked below). */
export const ENFORCED_KEYWORDS: ReadonlySet<string> = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$ref",
  "minLength",
  "maxLength",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "uniqueItems",
]);

export const ENFORCED_FORMATS: ReadonlySet<string> = new Set(["date", "time", "date-time", "uuid"]);

const NUMERIC_BOUNDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] as const;

/** `#` plus the JSON pointer of a schema location, e.g. `#/properties/name`. */
export function pointerText(pointer: string): string {
  return `#${pointer}`;
}

export function escapePointerToken(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** The refusal every unenforceable keyword gets. */
export function unenforceable(param: string, keyword: string, pointer: string, why?: string): LmxError {
  const reason = why ? ` (${why})` : "";
  return new LmxError(
    "unsupported_parameter",
    `${param}: the JSON Schema keyword '${keyword}' at ${pointerText(pointer)} cannot be enforced by the grammar${reason}; remove it or state the constraint in the prompt instead`,
    { param },
  );
}

export function isSchemaObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether a schema object's keywords other than annotations constrain anything. */
export function constrainingKeys(schema: Record<string, unknown>): string[] {
  return Object.keys(schema).filter((key) => !ANNOTATION_KEYWORDS.has(key));
}

/** Resolves a same-document `$ref` ("#" or "#/json/pointer"); undefined when it points elsewhere or nowhere. */
export function resolveLocalRef(root: JsonSchema, ref: string): { schema: JsonSchema; pointer: string } | undefined {
  if (ref === "#") return { schema: root, pointer: "" };
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  const tokens: string[] = [];
  for (const raw of ref.slice(2).split("/")) {
    let token: string;
    try {
      token = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    } catch {
      return undefined;
    }
    if (Array.isArray(node) && /^(0|[1-9][0-9]*)$/.test(token)) node = node[Number(token)];
    else if (isSchemaObject(node) && Object.hasOwn(node, token)) node = node[token];
    else return undefined;
    tokens.push(escapePointerToken(token));
  }
  if (typeof node !== "boolean" && !isSchemaObject(node)) return undefined;
  return { schema: node, pointer: "/" + tokens.join("/") };
}

/** Throws an `unsupported_parameter` LmxError naming the first keyword the grammar cannot enforce and where. */
export function checkEnforceable(schema: JsonSchema, param: string): void {
  walk(schema, schema, "", param);
}

function walk(root: JsonSchema, schema: unknown, pointer: string, param: string): void {
  if (typeof schema === "boolean" || !isSchemaObject(schema)) return; // ajv has already refused non-schemas
  for (const key of Object.keys(schema)) {
    if (ANNOTATION_KEYWORDS.has(key)) continue;
    if (!ENFORCED_KEYWORDS.has(key)) throw unenforceable(param, key, pointer);
  }
  if (pointer !== "" && schema.$id !== undefined) throw unenforceable(param, "$id", pointer, "only the root schema may carry $id");
  checkValues(root, schema, pointer, param);
  const child = (value: unknown, ...tokens: string[]): void =>
    walk(root, value, pointer + tokens.map((t) => "/" + escapePointerToken(t)).join(""), param);
  for (const key of ["properties", "$defs", "definitions"] as const) {
    const map = schema[key];
    if (isSchemaObject(map)) for (const [name, sub] of Object.entries(map)) child(sub, key, name);
  }
  for (const key of ["additionalProperties", "items"] as const) if (schema[key] !== undefined) child(schema[key], key);
  for (const key of ["prefixItems", "anyOf", "oneOf", "allOf"] as const) {
    const list = schema[key];
    if (Array.isArray(list)) list.forEach((sub, i) => child(sub, key, String(i)));
  }
}

function checkValues(root: JsonSchema, schema: Record<string, unknown>, pointer: string, param: string): void {
  if (schema.uniqueItems === true) throw unenforceable(param, "uniqueItems", pointer);
  if (Array.isArray(schema.allOf) && schema.allOf.length > 1)
    throw unenforceable(param, "allOf", pointer, "only an allOf with one member is enforced");
  if (schema.anyOf !== undefined && schema.oneOf !== undefined) throw unenforceable(param, "oneOf", pointer, "anyOf and oneOf in the same schema");
  if (typeof schema.format === "string" && !ENFORCED_FORMATS.has(schema.format))
    throw unenforceable(param, "format", pointer, `format '${schema.format}'; the enforced formats are date, time, date-time and uuid`);
  if (schema.format !== undefined && (schema.minLength !== undefined || schema.maxLength !== undefined))
    throw unenforceable(param, schema.minLength !== undefined ? "minLength" : "maxLength", pointer, "a length limit on a formatted string");
  if (typeof schema.$ref === "string") {
    if (resolveLocalRef(root, schema.$ref) === undefined)
      throw unenforceable(param, "$ref", pointer, `'${schema.$ref}' is not a reference within this schema`);
    const siblings = constrainingKeys(schema).filter((key) => key !== "$ref");
    if (siblings.length > 0) throw unenforceable(param, siblings[0]!, pointer, "a keyword beside $ref");
  }
  const types = typeof schema.type === "string" ? [schema.type] : Array.isArray(schema.type) ? schema.type : undefined;
  // Integers take any bound (rounded inward); real numbers only whole-number bounds, which the grammar splits exactly.
  const numberAllowed = types === undefined || types.includes("number");
  if (numberAllowed)
    for (const key of NUMERIC_BOUNDS) {
      const value = schema[key];
      if (typeof value === "number" && !Number.isInteger(value)) throw unenforceable(param, key, pointer, "bounds on a number must be whole numbers");
    }
}
