/**
 * The server-side tool loop on /v1/chat/completions (our extension, docs/skills.md): the conversation
 * (src/serving/conversation.ts) written as OpenAI's answer, streamed as chunks (with `executed_tool_call` chunks
 * as the server runs each call) or whole (with `message.executed_tool_calls`).
 */
import { randomBytes } from "node:crypto";
import type { ChatCompletionRequest } from "../api/openai/schemas.js";
import { ChoiceCollector, chunkFor, executedCallChunk, openAiUsage, roleChunk, usageChunk, type ChatAnswerMeta } from "../api/openai/chat-wire.js";
import { toOpenAiBody } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ChatJob } from "../chat/request.js";
import type { ServingContext } from "./context.js";
import { originOf, type ChatOutcomeSink, type ChatRun } from "./chat.js";
import { samplingOf } from "./chat-completion.js";
import { converse, DEFAULT_MAX_LOOP_STEPS, type ConversationSink } from "./conversation.js";
import type { GenerateInput, GenerateOutcome } from "./generate.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";
import { SSE_HEADERS } from "./sse.js";

export async function answerWithToolLoop(
  ctx: ServingContext,
  input: GenerateInput,
  model: ModelDescriptor,
  job: ChatJob,
  outcomes: ChatOutcomeSink | null,
  servedAs: Record<string, string>,
): Promise<GenerateOutcome> {
  const body = input.body as ChatCompletionRequest;
  const { signal } = input;
  const completionId = `chatcmpl-${randomBytes(12).toString("hex")}`;
  const meta: ChatAnswerMeta = { id: completionId, model: model.id, created: Math.floor(Date.now() / 1000), topLogprobs: job.logprobs };
  const stream = body.stream === true;
  const collector = new ChoiceCollector(0);
  const raw = input.response.raw;
  let firstRun: ChatRun | null = null;

  const send = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const write = (value: unknown): Promise<boolean> => send(`data: ${JSON.stringify(value)}\n\n`);
  const sink: ConversationSink = stream
    ? {
        async generationStarted(run) {
          if (firstRun) return true;
          firstRun = run;
          input.response.hijack();
          raw.writeHead(200, sseHeaders(input.headers, run.runnerHeaders, servedAs));
          return write(roleChunk(meta, 0));
        },
        async event(event) {
          const chunk = chunkFor(meta, event);
          return chunk === null || (await write(chunk));
        },
        callStarted: (index, call) => write(executedCallChunk(meta, { index, id: call.id, name: call.name, arguments: call.arguments })),
        callFinished: (index, result) => {
          const { name: _name, arguments: _arguments, ...outcome } = result;
          return write(executedCallChunk(meta, { index, ...outcome }));
        },
      }
    : {
        generationStarted(run) {
          firstRun ??= run;
          return true;
        },
        event(event) {
          collector.add(event);
          return true;
        },
      };

  const outcome = await converse(
    ctx,
    {
      model,
      job,
      sampling: samplingOf(body),
      ...originOf(input),
      caller: `loop:${completionId}`,
      maxSteps: ctx.config.skills?.max_loop_steps ?? DEFAULT_MAX_LOOP_STEPS,
    },
    sink,
    outcomes,
  );
  if (outcome.kind === "left") return { kind: "client_left" };
  if (outcome.kind === "failed") {
    // nothing went out yet on a whole answer: the caller answers the failure in the request's dialect
    if (!stream) throw outcome.error;
    raw.end(`data: ${JSON.stringify(toOpenAiBody(outcome.error))}\n\ndata: [DONE]\n\n`);
    return { kind: "failed", completionId, error: outcome.error };
  }
  if (stream) {
    if (!(await write(chunkFor(meta, outcome.finish)))) return { kind: "client_left" };
    if (body.stream_options?.include_usage && !(await write(usageChunk(meta, outcome.usage)))) return { kind: "client_left" };
    raw.end("data: [DONE]\n\n");
    return { kind: "answered", completionId };
  }
  collector.add(outcome.finish);
  const answer = collector.toChoice(job.logprobs);
  (answer["message"] as Record<string, unknown>)["executed_tool_calls"] = outcome.executed;
  const runnerHeaders = (firstRun as ChatRun | null)?.runnerHeaders ?? {};
  input.response.hijack();
  raw.writeHead(200, {
    ...input.headers,
    ...runnerHeaders,
    ...servedAs,
    "content-type": "application/json",
    "cache-control": "no-cache",
    "x-lmx-tool-loop-steps": String(outcome.steps),
  });
  raw.end(
    JSON.stringify({
      id: completionId,
      object: "chat.completion",
      created: meta.created,
      model: model.id,
      system_fingerprint: null,
      choices: [answer],
      usage: openAiUsage(outcome.usage),
    }),
  );
  return { kind: "answered", completionId };
}

function sseHeaders(
  headers: Record<string, string>,
  runnerHeaders: Record<string, string>,
  servedAs: Record<string, string>,
): Record<string, string> {
  return {
    ...headers,
    ...runnerHeaders,
    ...servedAs,
    ...SSE_HEADERS,
  };
}
