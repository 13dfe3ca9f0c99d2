/**
 * The server-side tool loop (our extension of /v1/chat/completions, docs/skills.md): tools of type "skill" are
 * offered to the model as function tools; when the model calls one, the server runs it through the skills
 * registry (caller `loop:<completion id>`, audited like every call), appends the call and its result to the
 * conversation and generates again, up to `skills.max_loop_steps` generations. The client's `tool_choice` applies
 * to the first generation; later ones are `auto`, and the last one `none`, so the answer always ends in text.
 * A call of a function the client runs itself ends the loop: it is returned as an ordinary `tool_calls` entry.
 *
 * Each generation is one chat run (src/serving/chat.ts) on its own lease: no sequence is held while a skill runs.
 */
import { randomBytes } from "node:crypto";
import type { ChatCompletionRequest } from "../api/openai/schemas.js";
import { ChoiceCollector, chunkFor, executedCallChunk, openAiUsage, roleChunk, usageChunk, type ChatAnswerMeta } from "../api/openai/chat-wire.js";
import { LmxError, toOpenAiBody } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { ChatJob } from "../chat/request.js";
import type { ChatTurn, ToolCallRecord, ToolChoice } from "../chat/types.js";
import type { LoopSkills, ServingContext } from "./context.js";
import { startChatRun, type ChatOutcomeSink, type ChatRun, type ChoiceEvent, type ChoiceUsage } from "./chat.js";
import { samplingOf } from "./chat-completion.js";
import type { GenerateInput, GenerateOutcome } from "./generate.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";

export const DEFAULT_MAX_LOOP_STEPS = 4;

/** One call the server ran, as listed in `message.executed_tool_calls`. */
export interface ExecutedToolCall {
  id: string;
  name: string;
  /** The arguments as the model wrote them (JSON text, as in `tool_calls`). */
  arguments: string;
  ok: boolean;
  /** The skill's JSON result; null when the call failed. */
  result: unknown;
  error?: { code: string; message: string; param?: string };
  duration_ms: number;
}

type FinishEvent = Extract<ChoiceEvent, { type: "finish" }>;

export async function answerWithToolLoop(
  ctx: ServingContext,
  input: GenerateInput,
  model: ModelDescriptor,
  job: ChatJob,
  outcomes: ChatOutcomeSink | null,
  servedAs: Record<string, string>,
): Promise<GenerateOutcome> {
  const skills = ctx.skills;
  const serverTools = job.serverTools;
  if (!skills || !serverTools) throw new LmxError("internal_error", "the server-side tool loop ran without a skills registry");
  const body = input.body as ChatCompletionRequest;
  const { signal } = input;
  const maxSteps = Math.max(2, ctx.config.skills?.max_loop_steps ?? DEFAULT_MAX_LOOP_STEPS);
  const completionId = `chatcmpl-${randomBytes(12).toString("hex")}`;
  const caller = `loop:${completionId}`;
  const meta: ChatAnswerMeta = { id: completionId, model: model.id, created: Math.floor(Date.now() / 1000), topLogprobs: job.logprobs };
  const stream = body.stream === true;
  const sampling = samplingOf(body);
  const turns: ChatTurn[] = [...job.turns];
  const collector = new ChoiceCollector(0);
  const executed: ExecutedToolCall[] = [];
  const usages: ChoiceUsage[] = [];
  const raw = input.response.raw;
  let headersSent = false;

  const send = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const write = (value: unknown): Promise<boolean> => send(`data: ${JSON.stringify(value)}\n\n`);
  /** Streamed: the chunk now; whole: collected for the answer. */
  const forward = async (event: ChoiceEvent): Promise<boolean> => {
    if (!stream) {
      collector.add(event);
      return true;
    }
    const chunk = chunkFor(meta, event);
    return chunk === null || (await write(chunk));
  };
  /** A failure after the stream's headers went out: an SSE error event, as on the plain path. */
  const failStream = (error: LmxError): GenerateOutcome => {
    raw.end(`data: ${JSON.stringify(toOpenAiBody(error))}\n\ndata: [DONE]\n\n`);
    return { kind: "failed", completionId, error };
  };

  for (let step = 0; ; step++) {
    const last = step === maxSteps - 1;
    // tool_choice is the client's for the first generation only: a forced call would otherwise repeat forever
    const choice: ToolChoice = step === 0 ? job.choice : last ? { kind: "none" } : { kind: "auto" };
    const stepJob: ChatJob = { ...job, turns: [...turns], choice, tools: choice.kind === "none" ? [] : job.offeredTools };
    let run: ChatRun;
    try {
      run = await startChatRun(
        ctx,
        {
          model,
          job: stepJob,
          sampling,
          signal,
          priority: input.priority,
          recorder: input.recorder,
          runnerHeaders: input.runnerHeaders,
        },
        outcomes,
      );
    } catch (error) {
      if (signal.aborted) return { kind: "client_left" };
      // before any byte went out the caller answers the refusal (a grown conversation past the context included)
      if (!headersSent) throw error;
      return failStream(error instanceof LmxError ? error : new LmxError("internal_error", String(error)));
    }
    if (stream && !headersSent) {
      input.response.hijack();
      raw.writeHead(200, sseHeaders(input.headers, run.runnerHeaders, servedAs));
      headersSent = true;
      if (!(await write(roleChunk(meta, 0)))) return { kind: "client_left" };
    }

    // the model's calls in this generation: the server's by the chat layer's index, the client's renumbered
    const serverCalls = new Map<number, ToolCallRecord>();
    const clientIndex = new Map<number, number>();
    let content = "";
    let reasoning = "";
    let finish: FinishEvent | null = null;
    let failure: LmxError | null = null;
    for await (const event of run.events) {
      switch (event.type) {
        case "error":
          failure ??= event.error;
          continue;
        case "finish":
          finish = event;
          usages.push(event.usage);
          continue;
        case "content":
          content += event.text;
          break;
        case "reasoning":
          reasoning += event.text;
          break;
        case "tool_call_start":
          if (serverTools.has(event.name)) {
            serverCalls.set(event.index, { id: event.id, name: event.name, arguments: "" });
            continue;
          }
          clientIndex.set(event.index, clientIndex.size);
          if (!(await forward({ ...event, index: clientIndex.get(event.index)! }))) return { kind: "client_left" };
          continue;
        case "tool_call_arguments": {
          const call = serverCalls.get(event.index);
          if (call) {
            call.arguments += event.text;
            continue;
          }
          if (!(await forward({ ...event, index: clientIndex.get(event.index) ?? event.index }))) return { kind: "client_left" };
          continue;
        }
      }
      if (!(await forward(event))) return { kind: "client_left" };
    }
    if (signal.aborted) return { kind: "client_left" };
    if (failure || !finish) {
      const error = failure ?? new LmxError("internal_error", "the generation ended without finishing");
      if (!headersSent) throw error;
      return failStream(error);
    }

    // the model asked: run its calls to this server's skills, in the order it wrote them
    const calls = [...serverCalls.entries()].sort((a, b) => a[0] - b[0]).map(([, call]) => call);
    const results: ExecutedToolCall[] = [];
    for (const call of calls) {
      const index = executed.length + results.length;
      if (stream && !(await write(executedCallChunk(meta, { index, id: call.id, name: call.name, arguments: call.arguments })))) {
        return { kind: "client_left" };
      }
      const result = await runCall(skills, call, caller, signal);
      if (signal.aborted) return { kind: "client_left" };
      results.push(result);
      if (stream) {
        const { name: _name, arguments: _arguments, ...outcome } = result;
        if (!(await write(executedCallChunk(meta, { index, ...outcome })))) return { kind: "client_left" };
      }
    }
    executed.push(...results);

    const more = calls.length > 0 && clientIndex.size === 0 && finish.reason === "tool_calls" && !last;
    if (more) {
      turns.push({ role: "assistant", content: content || null, reasoning: reasoning || undefined, toolCalls: calls });
      for (const result of results) turns.push({ role: "tool", content: toolMessageOf(result), toolCallId: result.id, name: result.name });
      continue;
    }
    // calls that were all the server's are answered: what ends the answer is the model's text, or its cut
    const reason = finish.reason === "tool_calls" && clientIndex.size === 0 ? "stop" : finish.reason;
    const finalEvent: FinishEvent = { ...finish, reason };
    const usage = totalUsage(usages);
    if (stream) {
      if (!(await write(chunkFor(meta, finalEvent)))) return { kind: "client_left" };
      if (body.stream_options?.include_usage && !(await write(usageChunk(meta, usage)))) return { kind: "client_left" };
      raw.end("data: [DONE]\n\n");
      return { kind: "answered", completionId };
    }
    collector.add(finalEvent);
    const answer = collector.toChoice(job.logprobs);
    (answer["message"] as Record<string, unknown>)["executed_tool_calls"] = executed;
    input.response.hijack();
    raw.writeHead(200, {
      ...input.headers,
      ...run.runnerHeaders,
      ...servedAs,
      "content-type": "application/json",
      "cache-control": "no-cache",
      "x-lmx-tool-loop-steps": String(step + 1),
    });
    raw.end(
      JSON.stringify({
        id: completionId,
        object: "chat.completion",
        created: meta.created,
        model: model.id,
        system_fingerprint: null,
        choices: [answer],
        usage: openAiUsage(usage),
      }),
    );
    return { kind: "answered", completionId };
  }
}

/**
 * Runs one call through the registry. A refusal (arguments that fail the schema, a skill that is gone) is a
 * failed call the model is told about, not a failed request: it may correct itself in the next generation.
 */
async function runCall(skills: LoopSkills, call: ToolCallRecord, caller: string, signal: AbortSignal): Promise<ExecutedToolCall> {
  const started = performance.now();
  const failed = (error: { code: string; message: string; param?: string | undefined }): ExecutedToolCall => ({
    id: call.id,
    name: call.name,
    arguments: call.arguments,
    ok: false,
    result: null,
    error: { code: error.code, message: error.message, ...(error.param ? { param: error.param } : {}) },
    duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
  });
  let args: unknown;
  try {
    args = JSON.parse(call.arguments);
  } catch {
    return failed({ code: "invalid_value", message: "the call's arguments are not JSON", param: "arguments" });
  }
  try {
    const execution = await skills.execute(call.name, args, { caller, signal, inLoop: true });
    if (!execution.ok)
      return { ...failed(execution.error ?? { code: "skill_failed", message: "the skill failed" }), duration_ms: execution.durationMs };
    return { id: call.id, name: call.name, arguments: call.arguments, ok: true, result: execution.value ?? null, duration_ms: execution.durationMs };
  } catch (error) {
    if (error instanceof LmxError) return failed({ code: error.code, message: error.message, param: error.param ?? undefined });
    return failed({ code: "internal_error", message: (error as Error)?.message ?? String(error) });
  }
}

/** What the model reads as the tool's answer: the result as JSON, or the error. */
function toolMessageOf(result: ExecutedToolCall): string {
  return JSON.stringify(result.ok ? result.result : { error: result.error });
}

/** Every generation evaluated its prompt and generated: usage is the sum over the loop's generations. */
function totalUsage(usages: ChoiceUsage[]): ChoiceUsage {
  return usages.reduce(
    (sum, u) => ({
      promptTokens: sum.promptTokens + u.promptTokens,
      cachedTokens: sum.cachedTokens + u.cachedTokens,
      completionTokens: sum.completionTokens + u.completionTokens,
    }),
    { promptTokens: 0, cachedTokens: 0, completionTokens: 0 },
  );
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
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  };
}
