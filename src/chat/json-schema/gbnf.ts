/**
 * JSON Schema → GBNF (llama.cpp's grammar format), composable: a tool-call grammar embeds one schema per tool
 * inside the family's call syntax. INTERFACE STUB — implemented in its own change.
 */
import type { JsonSchema } from "../types.js";

export class GbnfBuilder {
  /** Rules for one JSON value valid against `schema`; returns the rule's name. `hint` names the rules. */
  schema(_schema: JsonSchema, _hint: string): string {
    throw new Error("not implemented");
  }
  /** Any JSON object (response_format json_object). */
  anyObject(): string {
    throw new Error("not implemented");
  }
  /** A GBNF string literal for `text` (quoted and escaped). */
  literal(_text: string): string {
    throw new Error("not implemented");
  }
  /** Adds `name ::= body` (a fresh name if taken) and returns the name used. */
  rule(_name: string, _body: string): string {
    throw new Error("not implemented");
  }
  /** The whole grammar, with `root ::= rootBody`. */
  build(_rootBody: string): string {
    throw new Error("not implemented");
  }
}

/** Throws an `unsupported_parameter` LmxError naming the first keyword the grammar cannot enforce and where. */
export function checkEnforceable(_schema: JsonSchema, _param: string): void {
  throw new Error("not implemented");
}
