/**
 * Anthropic's Messages API over the chat layer: the request becomes a ChatJob (src/api/anthropic/to-chat.ts),
 * runs as any chat request does (same scheduler, priorities, metrics, grammars for forced tool calls), and the
 * events are written as Anthropic's message or event stream. Token counting renders the same prompt a request
 * would and counts it on the model's own runner.
 */
import { randomBytes } from "node:crypto";
import { LmxError } from "../errors/codes.js";
import { streamedErrorFor } from "../errors/dialects.js";
import { planChat } from "../chat/plan.js";
import { chatJobFromMessages, samplingOf } from "../api/anthropic/to-chat.js";
import type { CountTokensRequest, MessagesRequest } from "../api/anthropic/schemas.js";
import { anthropicUsage, MessageAssembler, messageBody, MessageStreamEncoder, stopOf, type MessageMeta } from "../api/anthropic/wire.js";
import type { Priority } from "../scheduler/priority.js";
import type { ServingContext } from "./context.js";
import { originOf, startChatRun, type ChoiceEvent } from "./chat.js";
import { GENERATION_ENDPOINTS, resolveServable, type GenerateInput, type GenerateOutcome } from "./generate.js";
import { countPromptTokens } from "./tokenize.js";
import { checkPromptSize } from "./prompt-size.js";
import type { ChatJob } from "../chat/request.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";
import type { RequestRecorder } from "../metrics/request.js";

/** Chat models only: an embedding model is refused as on /v1/chat/completions. */
const accepts = GENERATION_ENDPOINTS["/v1/chat/completions"].accepts;

export type MessagesInput = Omit<GenerateInput, "endpoint" | "body"> & { body: MessagesRequest };

export async function answerMessages(ctx: ServingContext, input: MessagesInput): Promise<GenerateOutcome> {
  const { body, signal } = input;
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  // everything the request gets wrong is refused before a model is loaded
  const job = jobWithinLimits(ctx, body);
  const { model, equivalent } = await resolveServable(ctx, body.model, accepts, input.recorder);
  let run;
  try {
    run = await startChatRun(ctx, { model, job, sampling: samplingOf(body), ...originOf(input) }, input.chatOutcomes ?? null);
  } catch (error) {
    if (signal.aborted) return { kind: "client_left" };
    throw error;
  }
  const meta: MessageMeta = { id: `msg_${randomBytes(12).toString("hex")}`, model: model.id };
  const stopSequences = body.stop_sequences ?? [];
  const raw = input.response.raw;
  input.response.hijack();
  const stream = body.stream === true;
  raw.writeHead(200, {
    ...input.headers,
    ...run.runnerHeaders,
    ...(equivalent ? { "x-lmx-served-model": equivalent.id } : {}),
    // Anthropic's SDKs show this as the answer's request id
    ...(input.headers["x-request-id"] ? { "request-id": input.headers["x-request-id"] } : {}),
    "content-type": stream ? "text/event-stream; charset=utf-8" : "application/json",
    "cache-control": "no-cache",
    ...(stream ? { connection: "keep-alive", "x-accel-buffering": "no" } : {}),
  });
  let failure: LmxError | null = null;
  let finish: Extract<ChoiceEvent, { type: "finish" }> | null = null;
  if (!stream) {
    const assembler = new MessageAssembler();
    for await (const event of run.events) {
      if (event.type === "error") failure ??= event.error;
      else if (event.type === "finish") finish = event;
      else assembler.add(event);
    }
    if (signal.aborted) return { kind: "client_left" };
    if (failure || !finish) {
      const error = failure ?? new LmxError("internal_error", "the generation ended without finishing");
      // headers are gone already; a cut connection is the only honest signal left
      raw.destroy(error);
      return { kind: "failed", completionId: meta.id, error };
    }
    const stop = stopOf(finish.reason, finish.stoppingWord, stopSequences);
    raw.end(JSON.stringify(messageBody(meta, assembler.blocks(), stop, anthropicUsage(finish.usage))));
    return { kind: "answered", completionId: meta.id };
  }
  const write = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const encoder = new MessageStreamEncoder(meta);
  if (!(await write(encoder.start()))) return { kind: "client_left" };
  for await (const event of run.events) {
    if (event.type === "error") failure ??= event.error;
    else if (event.type === "finish") finish = event;
    else if (!(await write(encoder.event(event)))) return { kind: "client_left" };
  }
  if (signal.aborted) return { kind: "client_left" };
  if (failure || !finish) {
    const error = failure ?? new LmxError("internal_error", "the generation ended without finishing");
    // Anthropic's SDKs raise an `error` event as the error it carries
    raw.end(streamedErrorFor("anthropic", error));
    return { kind: "failed", completionId: meta.id, error };
  }
  const stop = stopOf(finish.reason, finish.stoppingWord, stopSequences);
  const ended = encoder.end(stop, anthropicUsage(finish.usage));
  if (!(await write(ended))) return { kind: "client_left" };
  raw.end();
  return { kind: "answered", completionId: meta.id };
}

/** The job, once its text (every turn, tool calls' arguments included) is within max_prompt_bytes. */
function jobWithinLimits(ctx: ServingContext, body: MessagesRequest | CountTokensRequest): ChatJob {
  const job = chatJobFromMessages(body);
  const messages = job.turns.map((turn) => ({
    content: (turn.content ?? "") + (turn.role === "assistant" ? (turn.toolCalls ?? []).map((call) => call.arguments).join("") : ""),
  }));
  checkPromptSize({ messages }, ctx.config.max_prompt_bytes);
  return job;
}

export interface CountTokensInput {
  body: CountTokensRequest;
  signal: AbortSignal;
  priority: Priority;
  recorder: RequestRecorder;
}

/**
 * `/v1/messages/count_tokens`: the prompt a Messages request with this body would send, rendered with the
 * model's template and counted by its runner (the model is loaded if it is not, as for a request). The count is
 * the whole prompt: a generation's input_tokens plus cache_read_input_tokens.
 */
export async function countMessageTokens(ctx: ServingContext, input: CountTokensInput): Promise<{ input_tokens: number }> {
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const job = jobWithinLimits(ctx, input.body);
  const { model } = await resolveServable(ctx, input.body.model, accepts, input.recorder);
  const lease = await ctx.scheduler.acquire(model, input.signal, input.priority);
  try {
    const plan = planChat(job, lease.runner.info.template);
    return { input_tokens: await countPromptTokens(lease.runner, plan.prompt, input.signal) };
  } finally {
    lease.release();
  }
}
