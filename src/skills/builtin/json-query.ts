/**
 * json_query: a JSONPath subset (RFC 9535 selectors without filters) over a given document. Written here rather
 * than taken from npm: no JSONPath or JMESPath library is installed, and the worktree may not add one; filters
 * are left out on purpose — jsonpath-plus's filter evaluation was a remote-code-execution hole (CVE-2024-21534),
 * and a tool a model drives must not evaluate expressions. Supported: `$`, `.name`, `['name']`, `[0]`, `[-1]`,
 * `[*]`, `.*`, `[start:end:step]`, `[0,2]`, `['a','b']` and `..` (descendants).
 */
import { LmxError } from "../../errors/codes.js";
import type { BuiltinSkill } from "./types.js";

type Selector =
  | { kind: "name"; name: string }
  | { kind: "index"; index: number }
  | { kind: "wildcard" }
  | { kind: "slice"; start: number | null; end: number | null; step: number };
interface Segment {
  descendants: boolean;
  selectors: Selector[];
}

const MAX_MATCHES = 10_000;

function syntax(expression: string, at: number, why: string): LmxError {
  return new LmxError("invalid_value", `the JSONPath '${expression}' is not valid at character ${at + 1}: ${why}`, { param: "arguments.path" });
}

export function parsePath(expression: string): Segment[] {
  let i = 0;
  const s = expression.trim();
  if (s[0] !== "$") throw syntax(s, 0, "a path starts with $");
  i = 1;
  const segments: Segment[] = [];
  const name = () => {
    const match = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff-]*/.exec(s.slice(i));
    if (!match) throw syntax(s, i, "expected a member name");
    i += match[0].length;
    return match[0];
  };
  while (i < s.length) {
    let descendants = false;
    if (s.startsWith("..", i)) {
      descendants = true;
      i += 2;
    } else if (s[i] === ".") i += 1;
    else if (s[i] !== "[") throw syntax(s, i, "expected '.', '..' or '['");
    if (s[i] === "[") {
      const close = bracketEnd(s, i);
      segments.push({ descendants, selectors: splitTopLevel(s.slice(i + 1, close)).map((part) => selector(part.trim(), s, i)) });
      i = close + 1;
    } else if (s[i] === "*") {
      segments.push({ descendants, selectors: [{ kind: "wildcard" }] });
      i += 1;
    } else segments.push({ descendants, selectors: [{ kind: "name", name: name() }] });
  }
  return segments;
}

function bracketEnd(s: string, open: number): number {
  let quote: string | null = null;
  for (let j = open + 1; j < s.length; j++) {
    const c = s[j]!;
    if (quote) {
      if (c === "\\") j++;
      else if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "[") throw syntax(s, j, "filters and nested brackets are not supported");
    else if (c === "]") return j;
  }
  throw syntax(s, open, "unclosed '['");
}

function splitTopLevel(inner: string): string[] {
  const parts: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let j = 0; j < inner.length; j++) {
    const c = inner[j]!;
    if (quote) {
      if (c === "\\") j++;
      else if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === ",") {
      parts.push(inner.slice(start, j));
      start = j + 1;
    }
  }
  parts.push(inner.slice(start));
  return parts;
}

function selector(part: string, s: string, at: number): Selector {
  if (part === "*") return { kind: "wildcard" };
  if (/^'(?:[^'\\]|\\.)*'$|^"(?:[^"\\]|\\.)*"$/.test(part)) {
    const body = part.slice(1, -1).replace(/\\(.)/g, "$1");
    return { kind: "name", name: body };
  }
  if (/^-?\d+$/.test(part)) return { kind: "index", index: Number(part) };
  const slice = /^(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?)?$/.exec(part);
  if (slice) {
    const step = slice[3] === undefined ? 1 : Number(slice[3]);
    if (step === 0) throw syntax(s, at, "a slice step cannot be 0");
    return { kind: "slice", start: slice[1] === undefined ? null : Number(slice[1]), end: slice[2] === undefined ? null : Number(slice[2]), step };
  }
  if (part.startsWith("?")) throw syntax(s, at, "filter expressions are not supported");
  throw syntax(s, at, `'${part}' is not a name, index, slice or *`);
}

function children(value: unknown, sel: Selector): unknown[] {
  if (Array.isArray(value)) {
    if (sel.kind === "wildcard") return value;
    if (sel.kind === "index") {
      const i = sel.index < 0 ? value.length + sel.index : sel.index;
      return i >= 0 && i < value.length ? [value[i]] : [];
    }
    if (sel.kind === "slice") {
      const n = value.length;
      const norm = (x: number) => (x < 0 ? Math.max(n + x, -1) : Math.min(x, n));
      const out: unknown[] = [];
      if (sel.step > 0) for (let i = Math.max(norm(sel.start ?? 0), 0); i < norm(sel.end ?? n); i += sel.step) out.push(value[i]);
      else for (let i = Math.min(norm(sel.start ?? n - 1), n - 1); i > (sel.end === null ? -1 : norm(sel.end)); i += sel.step) out.push(value[i]);
      return out;
    }
    return [];
  }
  if (typeof value === "object" && value !== null) {
    if (sel.kind === "wildcard") return Object.values(value);
    if (sel.kind === "name" && Object.hasOwn(value, sel.name)) return [(value as Record<string, unknown>)[sel.name]];
  }
  return [];
}

function descendantsOf(value: unknown, out: unknown[]): void {
  out.push(value);
  if (typeof value === "object" && value !== null) for (const child of Object.values(value)) descendantsOf(child, out);
}

export function queryJson(document: unknown, expression: string): unknown[] {
  let nodes: unknown[] = [document];
  for (const segment of parsePath(expression)) {
    const from: unknown[] = [];
    if (segment.descendants) for (const node of nodes) descendantsOf(node, from);
    else from.push(...nodes);
    const next: unknown[] = [];
    for (const node of from) {
      for (const sel of segment.selectors) {
        next.push(...children(node, sel));
        if (next.length > MAX_MATCHES)
          throw new LmxError("invalid_value", `the path matches more than ${MAX_MATCHES} values`, { param: "arguments.path" });
      }
    }
    nodes = next;
  }
  return nodes;
}

export const jsonQuery: BuiltinSkill = {
  name: "json_query",
  description:
    "Selects values from a JSON document with a JSONPath expression ($.store.book[0].title, $..price, $.items[*].id, $.list[-1], $.a[1:3]; no filters). Returns every match in document order.",
  parameters: {
    type: "object",
    properties: { document: { description: "any JSON value" }, path: { type: "string", minLength: 1 } },
    required: ["document", "path"],
    additionalProperties: false,
  },
  outputSchema: { type: "object", properties: { matches: { type: "array" } }, required: ["matches"] },
  run: async (args) => ({ matches: queryJson(args["document"], args["path"] as string) }),
};
