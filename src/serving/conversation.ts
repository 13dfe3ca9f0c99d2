/**
 * One conversation turn answered by the model, with the server-side tool loop (docs/skills.md): tools of type
 * "skill" are offered to the model as function tools; when the model calls one, the server runs it through the
 * skills registry (audited like every call), appends the call and its result to the conversation and generates
 * again, up to `maxSteps` generations. The job's `tool_choice` applies to the first generation; later ones are
 * `auto`, and the last one `none`, so the answer always ends in text. A call of a function the caller runs itself
 * ends the loop: it is returned as an ordinary tool call. Without server tools this is one generation.
 *
 * No wire format here: the HTTP dialect (src/serving/tool-loop.ts) and the agent runs (src/agents) read the same
 * events through a sink. Each generation is one chat run (src/serving/chat.ts) on its own lease: no sequence is
 * held while a skill runs.
 */
import { LmxError } from "../errors/codes.js";
import type { ChatJob } from "../chat/request.js";
import type { ChatTurn, ToolCallRecord, ToolChoice } from "../chat/types.js";
import type { LoopSkills, ServingContext } from "./context.js";
import { originOf, startChatRun, type ChatOutcomeSink, type ChatRun, type ChoiceEvent, type ChoiceUsage, type ChatRunInput } from "./chat.js";

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

export type FinishEvent = Extract<ChoiceEvent, { type: "finish" }>;

/**
 * Where the conversation's progress goes. Every method answers whether to go on: false means the reader is gone
 * (the conversation ends as `left`, its generation aborted by the caller's signal).
 */
export interface ConversationSink {
  /** A generation was admitted and its first text is coming (the first call happens before any event). */
  generationStarted?(run: ChatRun, step: number): boolean | Promise<boolean>;
  /** The model's text, reasoning, and the calls the caller runs (renumbered from 0); never the server's calls. */
  event(event: ChoiceEvent): boolean | Promise<boolean>;
  /** A call the server is about to run (index counts the server's calls across generations). */
  callStarted?(index: number, call: ToolCallRecord): boolean | Promise<boolean>;
  callFinished?(index: number, result: ExecutedToolCall): boolean | Promise<boolean>;
}

export interface ConversationInput extends Omit<ChatRunInput, "plan"> {
  /** Whose calls the skills audit records (e.g. `loop:chatcmpl-…`, `agent:run-…`). */
  caller: string;
  maxSteps: number;
}

export type ConversationOutcome =
  | {
      kind: "finished";
      /** The last generation's text: what the model answered after its calls. */
      content: string;
      reasoning: string;
      /** The finish of the last generation; `tool_calls` only when calls are left for the caller to run. */
      finish: FinishEvent;
      /** The calls left for the caller to run, in order. */
      clientCalls: ToolCallRecord[];
      executed: ExecutedToolCall[];
      usage: ChoiceUsage;
      steps: number;
    }
  | { kind: "left" }
  /** Failed after a generation started (before that, the refusal is thrown). */
  | { kind: "failed"; error: LmxError };

export async function converse(
  ctx: ServingContext,
  input: ConversationInput,
  sink: ConversationSink,
  outcomes: ChatOutcomeSink | null,
): Promise<ConversationOutcome> {
  const { job, signal } = input;
  const serverTools = job.serverTools ?? new Set<string>();
  const skills = ctx.skills;
  if (serverTools.size > 0 && !skills) throw new LmxError("internal_error", "the server-side tool loop ran without a skills registry");
  const maxSteps = serverTools.size > 0 ? Math.max(2, input.maxSteps) : 1;
  const turns: ChatTurn[] = [...job.turns];
  const executed: ExecutedToolCall[] = [];
  const usages: ChoiceUsage[] = [];
  let started = false;

  for (let step = 0; ; step++) {
    const last = step === maxSteps - 1;
    // tool_choice is the caller's for the first generation only: a forced call would otherwise repeat forever
    const choice: ToolChoice = step === 0 ? job.choice : last ? { kind: "none" } : { kind: "auto" };
    const stepJob: ChatJob = step === 0 ? job : { ...job, turns: [...turns], choice, tools: choice.kind === "none" ? [] : job.offeredTools };
    let run: ChatRun;
    try {
      run = await startChatRun(ctx, { model: input.model, job: stepJob, sampling: input.sampling, ...originOf(input) }, outcomes);
    } catch (error) {
      if (signal.aborted) return { kind: "left" };
      // before anything went out the caller answers the refusal (a grown conversation past the context included)
      if (!started) throw error;
      return { kind: "failed", error: error instanceof LmxError ? error : new LmxError("internal_error", String(error)) };
    }
    started = true;
    if (sink.generationStarted && !(await sink.generationStarted(run, step))) return { kind: "left" };

    // the model's calls in this generation: the server's by the chat layer's index, the caller's renumbered
    const serverCalls = new Map<number, ToolCallRecord>();
    const clientCalls = new Map<number, ToolCallRecord & { index: number }>();
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
        case "tool_call_start": {
          if (serverTools.has(event.name)) {
            serverCalls.set(event.index, { id: event.id, name: event.name, arguments: "" });
            continue;
          }
          const index = clientCalls.size;
          clientCalls.set(event.index, { id: event.id, name: event.name, arguments: "", index });
          if (!(await sink.event({ ...event, index }))) return { kind: "left" };
          continue;
        }
        case "tool_call_arguments": {
          const call = serverCalls.get(event.index);
          if (call) {
            call.arguments += event.text;
            continue;
          }
          const clientCall = clientCalls.get(event.index);
          if (clientCall) clientCall.arguments += event.text;
          if (!(await sink.event({ ...event, index: clientCall?.index ?? event.index }))) return { kind: "left" };
          continue;
        }
      }
      if (!(await sink.event(event))) return { kind: "left" };
    }
    if (signal.aborted) return { kind: "left" };
    if (failure || !finish) return { kind: "failed", error: failure ?? new LmxError("internal_error", "the generation ended without finishing") };

    // the model asked: run its calls to this server's skills, in the order it wrote them
    const calls = [...serverCalls.entries()].sort((a, b) => a[0] - b[0]).map(([, call]) => call);
    const results: ExecutedToolCall[] = [];
    for (const call of calls) {
      const index = executed.length + results.length;
      if (sink.callStarted && !(await sink.callStarted(index, call))) return { kind: "left" };
      const result = await runCall(skills!, call, input.caller, signal);
      if (signal.aborted) return { kind: "left" };
      results.push(result);
      if (sink.callFinished && !(await sink.callFinished(index, result))) return { kind: "left" };
    }
    executed.push(...results);

    const more = calls.length > 0 && clientCalls.size === 0 && finish.reason === "tool_calls" && !last;
    if (more) {
      turns.push({ role: "assistant", content: content || null, reasoning: reasoning || undefined, toolCalls: calls });
      for (const result of results) turns.push({ role: "tool", content: toolMessageOf(result), toolCallId: result.id, name: result.name });
      continue;
    }
    // calls that were all the server's are answered: what ends the answer is the model's text, or its cut
    const reason = finish.reason === "tool_calls" && clientCalls.size === 0 ? "stop" : finish.reason;
    return {
      kind: "finished",
      content,
      reasoning,
      finish: { ...finish, reason },
      clientCalls: [...clientCalls.values()]
        .sort((a, b) => a.index - b.index)
        .map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
      executed,
      usage: totalUsage(usages),
      steps: step + 1,
    };
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
