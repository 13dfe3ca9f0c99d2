/**
 * /v1/completions with logprobs or several choices: the prompt as written, one raw generation per choice
 * (src/serving/chat.ts), written in the legacy completions shape (`logprobs: {tokens, token_logprobs,
 * top_logprobs, text_offset}`). Other completions keep the relayed path.
 */
import { randomBytes } from "node:crypto";
import type { CompletionRequest } from "../api/openai/schemas.js";
import { openAiUsage, sumUsage } from "../api/openai/chat-wire.js";
import { LmxError, toOpenAiBody } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ChatPlan } from "../chat/plan.js";
import type { ChatJob } from "../chat/request.js";
import type { OutputParser } from "../chat/types.js";
import type { ServingContext } from "./context.js";
import { samplingOf } from "./chat-completion.js";
import { originOf, startChatRun, type ChoiceUsage, type FinishReason } from "./chat.js";
import type { GenerateInput, GenerateOutcome } from "./generate.js";
import type { TokenLogprob } from "../chat/events.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";

export function needsRawCompletion(body: CompletionRequest): boolean {
  return (body.n ?? 1) > 1 || (body.logprobs !== null && body.logprobs !== undefined);
}

/** The generated text is the answer: no template, no markup to read. */
function textParser(): OutputParser {
  return {
    push: (text) => (text ? [{ type: "content", text }] : []),
    finish: () => ({ events: [], outcome: "none" }),
  };
}

interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Array<Record<string, number>>;
  text_offset: number[];
}

class LegacyLogprobCollector {
  readonly value: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  constructor(
    private readonly top: number,
    private offset: number,
  ) {}
  add(tokens: TokenLogprob[] | undefined): LegacyLogprobs {
    const part: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const token of tokens ?? []) {
      part.tokens.push(token.text);
      part.token_logprobs.push(token.logprob);
      part.top_logprobs.push(Object.fromEntries(token.top.slice(0, this.top).map((alt) => [alt.text, alt.logprob])));
      part.text_offset.push(this.offset);
      this.offset += token.text.length;
    }
    for (const key of ["tokens", "token_logprobs", "top_logprobs", "text_offset"] as const) (this.value[key] as unknown[]).push(...part[key]);
    return part;
  }
}

export async function answerTextCompletion(ctx: ServingContext, input: GenerateInput, model: ModelDescriptor): Promise<GenerateOutcome> {
  const body = input.body as CompletionRequest;
  const prompt = typeof body.prompt === "string" ? body.prompt : (body.prompt[0] ?? "");
  if (prompt.length === 0) throw new LmxError("invalid_value", "prompt must not be empty", { param: "prompt" });
  const top = body.logprobs ?? null;
  const choices = body.n ?? 1;
  const job: ChatJob = {
    turns: [],
    tools: [],
    offeredTools: [],
    choice: { kind: "none" },
    parallel: false,
    output: { kind: "text" },
    logprobs: top,
    choices,
    reasoningEffort: null,
  };
  const plan = (): ChatPlan => ({
    family: "generic",
    thinking: false,
    prompt,
    grammar: null,
    forced: false,
    stops: [],
    preservedTokens: [],
    newParser: textParser,
  });
  const { signal } = input;
  const run = await startChatRun(ctx, { model, job, plan, sampling: samplingOf(body), ...originOf(input) }, null);
  const id = `cmpl-${randomBytes(12).toString("hex")}`;
  const created = Math.floor(Date.now() / 1000);
  const raw = input.response.raw;
  input.response.hijack();
  const stream = body.stream === true;
  raw.writeHead(200, {
    ...input.headers,
    ...run.runnerHeaders,
    "content-type": stream ? "text/event-stream; charset=utf-8" : "application/json",
    "cache-control": "no-cache",
    ...(stream ? { connection: "keep-alive", "x-accel-buffering": "no" } : {}),
  });
  const texts = Array.from({ length: choices }, () => "");
  const finishes: Array<FinishReason | null> = Array.from({ length: choices }, () => null);
  const logprobs = Array.from({ length: choices }, () => new LegacyLogprobCollector(top ?? 0, 0));
  const usages: ChoiceUsage[] = [];
  let failure: LmxError | null = null;
  const send = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const write = (value: unknown): Promise<boolean> => send(`data: ${JSON.stringify(value)}\n\n`);
  for await (const event of run.events) {
    if (event.type === "error") {
      failure ??= event.error;
      continue;
    }
    const part = top === null ? null : logprobs[event.choice]!.add(event.tokens);
    let text = "";
    if (event.type === "content") {
      text = event.text;
      texts[event.choice] += text;
    } else if (event.type === "finish") {
      finishes[event.choice] = event.reason;
      usages[event.choice] = event.usage;
    } else continue;
    if (stream) {
      const choice = { text, index: event.choice, logprobs: part, finish_reason: event.type === "finish" ? event.reason : null };
      if (!(await write({ id, object: "text_completion", created, model: model.id, choices: [choice] }))) return { kind: "client_left" };
    }
  }
  if (signal.aborted) return { kind: "client_left" };
  if (failure) {
    if (stream) raw.end(`data: ${JSON.stringify(toOpenAiBody(failure))}\n\ndata: [DONE]\n\n`);
    else raw.destroy(failure);
    return { kind: "failed", completionId: id, error: failure };
  }
  const usage = openAiUsage(sumUsage(usages.filter(Boolean)));
  if (stream) {
    if (body.stream_options?.include_usage) await write({ id, object: "text_completion", created, model: model.id, choices: [], usage });
    raw.end("data: [DONE]\n\n");
  } else {
    raw.end(
      JSON.stringify({
        id,
        object: "text_completion",
        created,
        model: model.id,
        choices: texts.map((text, index) => ({
          text,
          index,
          logprobs: top === null ? null : logprobs[index]!.value,
          finish_reason: finishes[index] ?? "stop",
        })),
        usage,
      }),
    );
  }
  return { kind: "answered", completionId: id };
}
