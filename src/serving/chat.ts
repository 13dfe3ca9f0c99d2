/**
 * The chat layer's use-case, whatever the dialect (OpenAI chat completions, the Responses API): lease the model,
 * plan the request against its template, run one raw generation per choice on the runner, and turn the text
 * back into content, reasoning and tool calls. Refusals before the first generated text are thrown (the dialect
 * answers them); what happens after is an event in the run.
 */
import { LmxError } from "../errors/codes.js";
import { RUNNER_PRIORITY_HEADER } from "../runner/protocol.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RequestRecorder } from "../metrics/request.js";
import type { ModelLease } from "../scheduler/scheduler.js";
import type { Priority } from "../scheduler/priority.js";
import { planChat, type ChatPlan } from "../chat/plan.js";
import type { ChatJob } from "../chat/request.js";
import type { OutputEvent, TemplateInfo, ToolOutcome } from "../chat/types.js";
import { compileValidator } from "../chat/json-schema/validate.js";
import type { ServingContext } from "./context.js";
import { rawGenerate, type RawChunk, type RawGenerateRequest } from "./raw-generate.js";
import type { ChoiceEvent, FinishReason, TokenLogprob } from "../chat/events.js";

export type { ChoiceEvent, ChoiceUsage, FinishReason } from "../chat/events.js";

export interface SamplingRequest {
  maxTokens: number | null;
  temperature?: number | null | undefined;
  topP?: number | null | undefined;
  topK?: number | null | undefined;
  minP?: number | null | undefined;
  seed?: number | null | undefined;
  presencePenalty?: number | null | undefined;
  frequencyPenalty?: number | null | undefined;
  stop: string[];
  ignoreEos?: boolean | undefined;
}

/** Who asked, as every generation carries it: the abort signal, the class, the metrics, the trace headers. */
export interface RequestOrigin {
  signal: AbortSignal;
  priority: Priority;
  recorder: RequestRecorder | null;
  runnerHeaders: Record<string, string>;
}

export function originOf(request: RequestOrigin): RequestOrigin {
  return { signal: request.signal, priority: request.priority, recorder: request.recorder, runnerHeaders: request.runnerHeaders };
}

export interface ChatRunInput extends RequestOrigin {
  model: ModelDescriptor;
  job: ChatJob;
  /** How the job meets the model's template; planChat unless the caller has its own (a raw text completion). */
  plan?: (template: TemplateInfo) => ChatPlan;
  sampling: SamplingRequest;
}

export interface ChatRun {
  plan: ChatPlan;
  /** The runner configuration that answered (x-lmx-backend...), for the dialect's headers. */
  runnerHeaders: Record<string, string>;
  backend: string;
  /** Every choice's events, interleaved as they happen; ends after every choice finished (or failed). */
  events: AsyncIterable<ChoiceEvent>;
}

/** Counted per answer, for lmx:tool_calls_total and the conformance registry. */
export interface ChatOutcomeSink {
  record(model: string, backend: string, plan: ChatPlan, outcome: ToolOutcome | "json_valid" | "json_invalid"): void;
}

export async function startChatRun(ctx: ServingContext, input: ChatRunInput, outcomes: ChatOutcomeSink | null): Promise<ChatRun> {
  const { model, job, signal } = input;
  const waitStart = performance.now();
  const firstLease = await ctx.scheduler.acquire(model, signal, input.priority);
  input.recorder?.queued(performance.now() - waitStart);
  let plan: ChatPlan;
  let first: PrimedGeneration;
  try {
    const template = firstLease.runner.info.template;
    plan = input.plan ? input.plan(template) : planChat(job, template, input.sampling.maxTokens);
    first = await prime(firstLease, rawRequest(plan, job, input.sampling, 0), input);
  } catch (error) {
    firstLease.release();
    throw error;
  }
  const runner = firstLease.runner;
  const queue = new EventQueue<ChoiceEvent>();
  const validateJson = job.output.kind === "json_schema" ? compileValidator(job.output.schema) : null;
  const finishChoice = (event: ChoiceEvent, content: string) => {
    if (event.type !== "finish" || !outcomes) return;
    if (job.tools.length > 0 || event.outcome !== "none") outcomes.record(model.id, runner.info.backend, plan, event.outcome);
    if (job.output.kind !== "text") outcomes.record(model.id, runner.info.backend, plan, jsonOutcome(content, validateJson));
  };
  let running = job.choices;
  const done = () => {
    if (--running === 0) queue.close();
  };
  void consume(0, first, plan, input, queue, finishChoice).finally(done);
  for (let index = 1; index < job.choices; index++) {
    void (async () => {
      let lease: ModelLease;
      try {
        lease = await ctx.scheduler.acquire(model, signal, input.priority);
      } catch (error) {
        if (!signal.aborted) queue.push({ type: "error", choice: index, error: asLmx(error) });
        return;
      }
      try {
        const primed = await prime(lease, rawRequest(plan, job, input.sampling, index), input);
        await consume(index, primed, plan, input, queue, finishChoice);
      } catch (error) {
        lease.release();
        if (!signal.aborted) queue.push({ type: "error", choice: index, error: asLmx(error) });
      }
    })().finally(done);
  }
  return {
    plan,
    backend: runner.info.backend,
    runnerHeaders: {
      "x-lmx-backend": runner.info.backend,
      "x-lmx-context-size": String(runner.info.contextSize),
      "x-lmx-parallel": String(runner.info.parallel),
      "x-lmx-tool-format": plan.family,
    },
    events: queue,
  };
}

function jsonOutcome(content: string, validate: ((value: unknown) => string | null) | null): "json_valid" | "json_invalid" {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return "json_invalid";
  }
  if (validate) return validate(parsed) === null ? "json_valid" : "json_invalid";
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? "json_valid" : "json_invalid";
}

function rawRequest(plan: ChatPlan, job: ChatJob, sampling: SamplingRequest, choice: number): RawGenerateRequest {
  const seed = sampling.seed === null || sampling.seed === undefined ? null : sampling.seed + choice;
  return {
    prompt: plan.prompt,
    maxTokens: sampling.maxTokens,
    temperature: sampling.temperature ?? null,
    topP: sampling.topP ?? null,
    topK: sampling.topK ?? null,
    minP: sampling.minP ?? null,
    seed,
    presencePenalty: sampling.presencePenalty ?? null,
    frequencyPenalty: sampling.frequencyPenalty ?? null,
    stop: [...sampling.stop, ...plan.stops],
    grammar: plan.grammar,
    // top_logprobs 0 still reports the chosen token's own log-probability
    nProbs: job.logprobs === null ? 0 : Math.max(1, job.logprobs),
    preservedTokens: plan.preservedTokens,
    // a grammar's end is the answer's end: past it only end-of-generation tokens are allowed, which ignore_eos
    // would forbid (llama-server fails the request; node-llama-cpp would decode hidden tokens to max_tokens)
    ignoreEos: plan.grammar === null && (sampling.ignoreEos ?? false),
  };
}

/** A generation whose first chunk has arrived: a refusal (context too long...) was thrown before anything was said. */
interface PrimedGeneration {
  lease: ModelLease;
  iterator: AsyncIterator<RawChunk>;
  first: IteratorResult<RawChunk>;
}

async function prime(lease: ModelLease, request: RawGenerateRequest, input: ChatRunInput): Promise<PrimedGeneration> {
  // the class travels with the request (engines that schedule by priority can read it)
  const headers = { ...input.runnerHeaders, [RUNNER_PRIORITY_HEADER]: input.priority };
  const iterator = rawGenerate(lease.runner, request, input.signal, headers)[Symbol.asyncIterator]();
  const first = await iterator.next();
  return { lease, iterator, first };
}

async function consume(
  choice: number,
  primed: PrimedGeneration,
  plan: ChatPlan,
  input: ChatRunInput,
  queue: EventQueue<ChoiceEvent>,
  onFinish: (event: ChoiceEvent, content: string) => void,
): Promise<void> {
  const parser = plan.newParser();
  const { recorder } = input;
  let pending: TokenLogprob[] = [];
  let content = "";
  let calls = 0;
  const emit = (events: OutputEvent[]) => {
    for (const event of events) {
      if (event.type === "content") content += event.text;
      if (event.type === "tool_call_start") calls++;
      // log-probabilities travel with the first event their text produced
      queue.push({ ...event, choice, ...(pending.length > 0 ? { tokens: pending } : {}) });
      pending = [];
    }
  };
  try {
    let next = primed.first;
    while (!next.done) {
      const chunk = next.value;
      if (chunk.type === "text") {
        if (recorder && choice === 0) recorder.tokens(Math.max(1, chunk.tokens.length), performance.now());
        pending.push(...chunk.tokens);
        emit(parser.push(chunk.text));
      } else {
        const end = parser.finish();
        emit(end.events);
        const usage = { promptTokens: chunk.promptTokens, cachedTokens: chunk.cachedTokens, completionTokens: chunk.completionTokens };
        recorder?.usage(usage);
        if (recorder && choice === 0) recorder.streamFinished(performance.now());
        const reason: FinishReason = chunk.finishReason === "length" ? "length" : calls > 0 ? "tool_calls" : "stop";
        const finish: ChoiceEvent = {
          type: "finish",
          choice,
          reason,
          stoppingWord: chunk.stoppingWord,
          outcome: end.outcome,
          usage,
          ...(pending.length > 0 ? { tokens: pending } : {}),
        };
        onFinish(finish, content);
        queue.push(finish);
      }
      next = await primed.iterator.next();
    }
  } catch (error) {
    if (!input.signal.aborted) queue.push({ type: "error", choice, error: asLmx(error) });
  } finally {
    primed.lease.release();
  }
}

function asLmx(error: unknown): LmxError {
  return error instanceof LmxError ? error : new LmxError("internal_error", `generation failed: ${(error as Error)?.message ?? String(error)}`);
}

/** Events pushed by several producers, read by one consumer in arrival order. */
class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private closed = false;
  private wake: (() => void) | null = null;

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}
