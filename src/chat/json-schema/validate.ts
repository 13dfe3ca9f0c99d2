/**
 * JSON Schema validation with ajv (draft 2020-12, the dialect zod and pydantic emit): refusing schemas that are
 * not schemas, and checking values against them. Compiled validators are cached by schema text, since the same
 * tool and response schemas arrive with every request of a conversation.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import ajvFormats from "ajv-formats";
import { LmxError } from "../../errors/codes.js";

const CACHE_SIZE = 256;

// strict: false because client schemas carry annotations ajv does not know (OpenAI's `strict`, OpenAPI's
// `example`); the meta-schema still refuses malformed keywords. logger: false keeps ajv off stdout.
const ajv = new Ajv2020({ strict: false, allErrors: false, logger: false });
ajvFormats.default(ajv);

const cache = new Map<string, ValidateFunction>();

/** Throws `invalid_value` naming `param` unless `schema` is a JSON Schema ajv can compile. */
export function assertValidJsonSchema(schema: unknown, param: string): void {
  if (typeof schema !== "boolean" && (typeof schema !== "object" || schema === null || Array.isArray(schema)))
    throw new LmxError("invalid_value", `${param} is not a valid JSON Schema: a schema must be an object or a boolean`, { param });
  try {
    compiled(schema);
  } catch (error) {
    throw new LmxError("invalid_value", `${param} is not a valid JSON Schema: ${(error as Error).message}`, { param });
  }
}

/** A validator for `schema`: null when a value is valid, else a short description of the first error. */
export function compileValidator(schema: unknown): (value: unknown) => string | null {
  const validate = compiled(schema);
  return (value) => (validate(value) ? null : ajv.errorsText(validate.errors, { dataVar: "value" }));
}

function compiled(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  const hit = cache.get(key);
  if (hit !== undefined) {
    // Map order is insertion order: re-inserting marks it most recently used.
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const prepared = withoutDialect(schema);
  if (!ajv.validateSchema(prepared)) throw new Error(ajv.errorsText(ajv.errors, { dataVar: "schema" }));
  const validate = ajv.compile(prepared);
  // The compiled function stands alone; dropping ajv's own entry keeps its cache bounded by ours and lets two
  // schemas with the same $id coexist.
  if (typeof prepared !== "boolean") ajv.removeSchema(prepared);
  cache.set(key, validate);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  return validate;
}

/** Every schema is read as 2020-12: a root `$schema` naming another draft (zod-to-json-schema's draft-07) is dropped. */
function withoutDialect(schema: unknown): boolean | Record<string, unknown> {
  if (typeof schema === "boolean") return schema;
  const { $schema: _dialect, ...rest } = schema as Record<string, unknown>;
  return rest;
}
