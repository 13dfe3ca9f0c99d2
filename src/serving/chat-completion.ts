/**
 * /v1/chat/completions through the chat layer: starts the run (src/serving/chat.ts) and writes OpenAI's answer,
 * streamed as chunks or whole. A refusal before the first generated text is thrown, as on the relayed path.
 */
import { randomBytes } from "node:crypto";
import type { ChatCompletionRequest } from "../api/openai/schemas.js";
import { stopList } from "../api/openai/messages.js";
import { ChoiceCollector, chunkFor, roleChunk, sumUsage, usageChunk, type ChatAnswerMeta } from "../api/openai/chat-wire.js";
import { toOpenAiBody, type LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ChatJob } from "../chat/request.js";
import type { ServingContext } from "./context.js";
import { originOf, startChatRun, type ChatOutcomeSink, type ChoiceUsage, type SamplingRequest } from "./chat.js";
import { answerWithToolLoop } from "./tool-loop.js";
import type { GenerateInput, GenerateOutcome } from "./generate.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";

export async function answerChatCompletion(
  ctx: ServingContext,
  input: GenerateInput,
  model: ModelDescriptor,
  job: ChatJob,
  outcomes: ChatOutcomeSink | null,
  servedAs: Record<string, string>,
): Promise<GenerateOutcome> {
  const body = input.body as ChatCompletionRequest;
  const { signal } = input;
  if (job.serverTools && job.serverTools.size > 0) return answerWithToolLoop(ctx, input, model, job, outcomes, servedAs);
  const run = await startChatRun(ctx, { model, job, sampling: samplingOf(body), ...originOf(input) }, outcomes);
  const completionId = `chatcmpl-${randomBytes(12).toString("hex")}`;
  const meta: ChatAnswerMeta = { id: completionId, model: model.id, created: Math.floor(Date.now() / 1000), topLogprobs: job.logprobs };
  const raw = input.response.raw;
  input.response.hijack();
  const stream = body.stream === true;
  raw.writeHead(200, {
    ...input.headers,
    ...run.runnerHeaders,
    ...servedAs,
    "content-type": stream ? "text/event-stream; charset=utf-8" : "application/json",
    "cache-control": "no-cache",
    ...(stream ? { connection: "keep-alive", "x-accel-buffering": "no" } : {}),
  });
  const usages: ChoiceUsage[] = [];
  let failure: LmxError | null = null;
  if (!stream) {
    const collectors = Array.from({ length: job.choices }, (_, i) => new ChoiceCollector(i));
    for await (const event of run.events) {
      if (event.type === "error") {
        failure ??= event.error;
        continue;
      }
      collectors[event.choice]?.add(event);
      if (event.type === "finish") usages[event.choice] = event.usage;
    }
    if (signal.aborted) return { kind: "client_left" };
    if (failure) {
      // headers are gone already; a cut connection is the only honest signal left
      raw.destroy(failure);
      return { kind: "failed", completionId, error: failure };
    }
    raw.end(
      JSON.stringify({
        id: completionId,
        object: "chat.completion",
        created: meta.created,
        model: model.id,
        system_fingerprint: null,
        choices: collectors.map((c) => c.toChoice(job.logprobs)),
        usage: openAiUsageOf(sumUsage(usages.filter(Boolean))),
      }),
    );
    return { kind: "answered", completionId };
  }
  const send = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const write = (value: unknown): Promise<boolean> => send(`data: ${JSON.stringify(value)}\n\n`);
  for (let i = 0; i < job.choices; i++) if (!(await write(roleChunk(meta, i)))) return { kind: "client_left" };
  for await (const event of run.events) {
    if (event.type === "error") {
      failure ??= event.error;
      continue;
    }
    if (event.type === "finish") usages[event.choice] = event.usage;
    const chunk = chunkFor(meta, event);
    if (chunk && !(await write(chunk))) return { kind: "client_left" };
  }
  if (signal.aborted) return { kind: "client_left" };
  if (failure) {
    raw.end(`data: ${JSON.stringify(toOpenAiBody(failure))}\n\ndata: [DONE]\n\n`);
    return { kind: "failed", completionId, error: failure };
  }
  if (body.stream_options?.include_usage) await write(usageChunk(meta, sumUsage(usages.filter(Boolean))));
  raw.end("data: [DONE]\n\n");
  return { kind: "answered", completionId };
}

/** The sampling fields OpenAI's chat and completions bodies share (completions have no max_completion_tokens). */
type SamplingFields = Pick<
  ChatCompletionRequest,
  "max_tokens" | "temperature" | "top_p" | "top_k" | "min_p" | "seed" | "presence_penalty" | "frequency_penalty" | "stop" | "ignore_eos"
> & { max_completion_tokens?: number | null | undefined };

export function samplingOf(body: SamplingFields): SamplingRequest {
  return {
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? null,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
    minP: body.min_p,
    seed: body.seed,
    presencePenalty: body.presence_penalty,
    frequencyPenalty: body.frequency_penalty,
    stop: stopList(body.stop),
    ignoreEos: body.ignore_eos ?? false,
  };
}

function openAiUsageOf(usage: ChoiceUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}
