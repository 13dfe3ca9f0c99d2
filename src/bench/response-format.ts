/**
 * The `response_format` a benchmark sends, so the cost of constrained decoding can be measured: `text` sends
 * none (the engine's own chat path), `json_object` and `json_schema` go through the grammar-constrained path.
 */

export const RESPONSE_FORMATS = ["text", "json_object", "json_schema"] as const;
export type ResponseFormatKind = (typeof RESPONSE_FORMATS)[number];

/**
 * One string field and nothing else: on random weights a model rarely closes the string, so a constrained
 * request keeps decoding up to max_tokens like an unconstrained one and the two tok/s figures compare.
 */
export const BENCH_JSON_SCHEMA = {
  type: "object",
  properties: { story: { type: "string" } },
  required: ["story"],
  additionalProperties: false,
} as const;

export function isResponseFormatKind(value: string): value is ResponseFormatKind {
  return (RESPONSE_FORMATS as readonly string[]).includes(value);
}

/** The request field for a kind; null for `text`, which sends no field at all (as a plain chat request does). */
export function responseFormatField(kind: ResponseFormatKind): Record<string, unknown> | null {
  switch (kind) {
    case "text":
      return null;
    case "json_object":
      return { type: "json_object" };
    case "json_schema":
      return { type: "json_schema", json_schema: { name: "story", schema: BENCH_JSON_SCHEMA } };
  }
}
