/** JSON Schema validation (ajv). INTERFACE STUB — implemented in its own change. */
export function assertValidJsonSchema(_schema: unknown, _param: string): void {
  throw new Error("not implemented");
}
export function compileValidator(_schema: unknown): (value: unknown) => string | null {
  throw new Error("not implemented");
}
