/**
 * Per-family tool-call formats: the grammar that forces a call (or a response_format value) in the family's own
 * syntax, and the streaming parser that reads the family's output back. Each grammar produces exactly the text
 * its parser reads (docs in each family's module):
 *
 * - hermes:  `<tool_call>\n{"name": "N", "arguments": ARGS}\n</tool_call>`, parallel: `\n` between calls
 * - generic: `<tool_call>{"name": "N", "arguments": ARGS}</tool_call>`, parallel: `\n` between calls
 * - llama3:  `{"name": "N", "parameters": ARGS}`, parallel: `\n` between calls
 * - mistral: `[TOOL_CALLS] [{"name": "N", "arguments": ARGS}]`, parallel: `, ` between the array's calls
 * - harmony: `<|channel|>commentary to=functions.N <|constrain|>json<|message|>ARGS` — always one call: `<|call|>`
 *   ends generation, so a second call cannot follow in the same answer
 *
 * With thinking, an optional bounded `<think>\n…</think>\n\n` block comes first (harmony: an optional bounded
 * `<|channel|>analysis<|message|>…<|end|><|start|>assistant`).
 */
import type { GbnfBuilder } from "../json-schema/gbnf.js";
import type { JsonSchema, OutputParser, ToolDefinition, ToolFamily } from "../types.js";
import type { ParserOptions } from "./emitter.js";
import { allowedTools, callRule, repeated, seq, type ForcedChoice } from "./grammar.js";
import { H_CHANNEL, H_CONSTRAIN, H_END, H_MESSAGE, H_START, H_CALL, H_RETURN, harmonyParser } from "./harmony.js";
import { PYTHON_TAG, LLAMA3_CALL_SEPARATOR, llama3Parser } from "./llama3.js";
import { ARGS, CALL_ID, TOOL_CALLS, mistralParser } from "./mistral.js";
import { taggedParser, TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from "./tagged.js";
import { boundedCount, THINK_CLOSE, THINK_OPEN, thinkingGrammar, withThinking, type GrammarOptions } from "./thinking.js";

export type { ForcedChoice } from "./grammar.js";
export type { GrammarOptions } from "./thinking.js";
export type { ParserOptions } from "./emitter.js";

export interface ToolFormat {
  readonly family: ToolFamily;
  /** The root body (for `builder.build`) of output that is only the family's call syntax. */
  grammar(builder: GbnfBuilder, tools: readonly ToolDefinition[], choice: ForcedChoice, parallel: boolean, opts: GrammarOptions): string;
  /** The root body of output that is one JSON value (response_format), after the optional reasoning. */
  jsonGrammar(builder: GbnfBuilder, schema: JsonSchema | "object", opts: GrammarOptions): string;
  /** A fresh streaming parser for one answer. */
  parser(options: ParserOptions): OutputParser;
  /** Marker strings the engine must render as text (they are special tokens in the family's vocabularies). */
  readonly preservedTokens: string[];
  /** Strings that end generation (beyond the model's end-of-generation tokens). */
  readonly stops: string[];
}

const THINK_TOKENS = [THINK_OPEN, THINK_CLOSE];

function jsonValue(b: GbnfBuilder, schema: JsonSchema | "object"): string {
  return schema === "object" ? b.anyObject() : b.schema(schema, "response");
}

/** Families whose output is [think block] then the answer, parsed by `inner` behind the thinking wrapper. */
function thinkingFamily(
  family: ToolFamily,
  calls: (b: GbnfBuilder, tools: readonly ToolDefinition[], parallel: boolean) => string,
  inner: (options: ParserOptions) => OutputParser,
  markers: readonly string[],
  stops: string[],
): ToolFormat {
  return {
    family,
    grammar: (b, tools, choice, parallel, opts) => seq(thinkingGrammar(b, opts), calls(b, allowedTools(tools, choice), parallel)),
    jsonGrammar: (b, schema, opts) => seq(thinkingGrammar(b, opts), jsonValue(b, schema)),
    parser: (options) =>
      options.thinking === undefined || options.thinking === false ? inner(options) : withThinking(inner(options), options.thinking === "open"),
    preservedTokens: [...markers, ...THINK_TOKENS],
    stops,
  };
}

const tagged = (newlines: boolean) => (b: GbnfBuilder, tools: readonly ToolDefinition[], parallel: boolean) => {
  const nl = newlines ? "\n" : "";
  const call = callRule(
    b,
    tools,
    (name, args) => `${b.literal(`${TOOL_CALL_OPEN}${nl}{"name": ${name}, "arguments": `)} ${args} ${b.literal(`}${nl}${TOOL_CALL_CLOSE}`)}`,
  );
  return repeated(call, b.literal("\n"), parallel);
};

const FORMATS: Record<ToolFamily, ToolFormat> = {
  hermes: thinkingFamily("hermes", tagged(true), taggedParser, [TOOL_CALL_OPEN, TOOL_CALL_CLOSE], []),
  generic: thinkingFamily("generic", tagged(false), taggedParser, [TOOL_CALL_OPEN, TOOL_CALL_CLOSE], []),
  llama3: thinkingFamily(
    "llama3",
    (b, tools, parallel) => {
      const call = callRule(b, tools, (name, args) => `${b.literal(`{"name": ${name}, "parameters": `)} ${args} ${b.literal("}")}`);
      return repeated(call, b.literal(LLAMA3_CALL_SEPARATOR), parallel);
    },
    llama3Parser,
    [PYTHON_TAG],
    ["<|eom_id|>"],
  ),
  mistral: thinkingFamily(
    "mistral",
    (b, tools, parallel) => {
      const call = callRule(b, tools, (name, args) => `${b.literal(`{"name": ${name}, "arguments": `)} ${args} ${b.literal("}")}`);
      return seq(b.literal(`${TOOL_CALLS} [`), repeated(call, b.literal(", "), parallel), b.literal("]"));
    },
    mistralParser,
    [TOOL_CALLS, ARGS, CALL_ID],
    [],
  ),
  harmony: {
    family: "harmony",
    grammar: (b, tools, choice, _parallel, opts) => {
      const call = callRule(b, allowedTools(tools, choice), (name, args) => {
        const recipient = `functions.${JSON.parse(name) as string}`;
        return `${b.literal(`${H_CHANNEL}commentary to=${recipient} ${H_CONSTRAIN}json${H_MESSAGE}`)} ${args}`;
      });
      return seq(analysisGrammar(b, opts), call);
    },
    jsonGrammar: (b, schema, opts) => seq(analysisGrammar(b, opts), b.literal(`${H_CHANNEL}final${H_MESSAGE}`), jsonValue(b, schema)),
    parser: harmonyParser,
    preservedTokens: [H_CHANNEL, H_CONSTRAIN, H_MESSAGE, H_START, H_END],
    stops: [H_CALL, H_RETURN],
  },
};

/** An optional bounded analysis message in which no harmony marker (`<|`) can occur. */
function analysisGrammar(b: GbnfBuilder, opts: GrammarOptions): string {
  if (!opts.thinking) return "";
  const item = b.rule("analysis-char", `[^<] | "<" [^|<]`);
  const body = b.rule("analysis-body", `${item}{0,${boundedCount(opts.maxThinkingChars)}}`);
  return `( ${b.literal(`${H_CHANNEL}analysis${H_MESSAGE}`)} ${body} ${b.literal(`${H_END}${H_START}assistant`)} )?`;
}

export function toolFormatFor(family: ToolFamily): ToolFormat {
  return FORMATS[family];
}
