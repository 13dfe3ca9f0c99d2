/**
 * One casing in every JSON the server writes: snake_case, as OpenAI does. Internal types are camelCase
 * (TypeScript's habit); admin answers pass through `snakeCaseKeys` once, at the edge (a preSerialization hook),
 * instead of a hand-written mapper per resource.
 */

/** Objects whose keys are data (model ids, free-form metadata), not field names: kept as they are. */
const MAP_FIELDS = new Set(["per_model", "models", "details", "metadata", "labels"]);

export function snakeCase(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z])([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();
}

export function snakeCaseKeys(value: unknown, keepKeys = false): unknown {
  if (Array.isArray(value)) return value.map((item) => snakeCaseKeys(item));
  if (value === null || typeof value !== "object" || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    const name = keepKeys ? key : snakeCase(key);
    const isMap = !keepKeys && MAP_FIELDS.has(name) && inner !== null && typeof inner === "object" && !Array.isArray(inner);
    out[name] = isMap ? mapValues(inner as Record<string, unknown>) : snakeCaseKeys(inner);
  }
  return out;
}

/** A map keeps its keys; its values are records like any other. */
function mapValues(map: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(map)) out[key] = snakeCaseKeys(inner);
  return out;
}
