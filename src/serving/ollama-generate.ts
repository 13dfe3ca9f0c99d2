/**
 * /api/chat and /api/generate: the chat layer's run (src/serving/chat.ts) read as Ollama's pieces. Refusals
 * before the first generated text are thrown (the route answers them as `{error}`); what happens after is a
 * piece. The context a request asks for (`options.num_ctx`) is never cut silently: a larger one reloads the
 * model with it when `ollama.allow_context_reload` is on, and is refused otherwise.
 */
import { LmxError } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RequestRecorder } from "../metrics/request.js";
import type { Priority } from "../scheduler/priority.js";
import { planChat, type ChatPlan } from "../chat/plan.js";
import type { ChatJob } from "../chat/request.js";
import type { OutputParser, TemplateInfo } from "../chat/types.js";
import { chatJobOf, generateJobOf, keepAliveOf, samplingOf, thinkingOf, type KeepAlive } from "../api/ollama/convert.js";
import type { OllamaChatRequest, OllamaGenerateRequest } from "../api/ollama/schemas.js";
import {
  doneObject,
  pieceObject,
  type OllamaDelta,
  type OllamaDoneReason,
  type OllamaKind,
  type OllamaStats,
  type OllamaToolCall,
} from "../api/ollama/wire.js";
import { streamedErrorFor } from "../errors/dialects.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";
import type { ServingContext } from "./context.js";
import type { ChoiceEvent, ChoiceUsage } from "../chat/events.js";
import { originOf, startChatRun, type ChatOutcomeSink, type SamplingRequest } from "./chat.js";
import { GENERATION_ENDPOINTS, type GenerateInput, type GenerateOutcome } from "./generate.js";

export type OllamaPiece =
  | ({ type: "delta" } & OllamaDelta)
  | { type: "done"; reason: OllamaDoneReason; usage: ChoiceUsage; stats: OllamaStats }
  | { type: "error"; error: LmxError };

export interface OllamaGenerationInput {
  model: string;
  job: ChatJob;
  /** The prompt as written, no template (/api/generate with raw, or a model without a chat template). */
  raw: { prompt: string; always: boolean } | null;
  showThinking: boolean;
  sampling: SamplingRequest;
  numCtx: number | null;
  keepAlive: KeepAlive;
  /** Nothing to generate: only load (or, with keep_alive 0, unload) the model, as Ollama does. */
  loadOnly: boolean;
  /** performance.now() when the request arrived. */
  startedAt: number;
  signal: AbortSignal;
  priority: Priority;
  recorder: RequestRecorder | null;
  runnerHeaders: Record<string, string>;
  outcomes: ChatOutcomeSink | null;
}

export interface OllamaGeneration {
  model: ModelDescriptor;
  /** The runner configuration that answered (x-lmx-backend...). */
  headers: Record<string, string>;
  pieces: AsyncIterable<OllamaPiece>;
}

const ns = (ms: number) => Math.max(0, Math.round(ms * 1e6));

/** Ollama clients append `:latest` to names that carry no tag; this server's ids have none. */
export async function resolveOllamaModel(ctx: ServingContext, given: string): Promise<ModelDescriptor> {
  // a pulled model is named as it was pulled: `hf.co/org/repo:QUANT` is the hub repo `org/repo:QUANT` here
  const name = given.replace(/^(https?:\/\/)?(hf\.co|huggingface\.co)\//, "");
  try {
    return await ctx.inventory.resolve(name);
  } catch (error) {
    if (!name.endsWith(":latest")) throw error;
    return await ctx.inventory.resolve(name.slice(0, -":latest".length)).catch(() => {
      throw error;
    });
  }
}

/** The model a generation may use: servable, and not an embedding model. */
async function generationModel(ctx: ServingContext, name: string): Promise<ModelDescriptor> {
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const model = await resolveOllamaModel(ctx, name);
  const unservable = ctx.scheduler.unservableReason(model);
  const refusal = (unservable?.code === "model_file_invalid" ? null : unservable) ?? GENERATION_ENDPOINTS["/v1/chat/completions"].accepts(model);
  if (refusal) throw refusal;
  return model;
}

/**
 * Makes sure the model runs with at least `numCtx` tokens of context: a reload through the scheduler's load
 * with settings (as POST /admin/models/load does), or a refusal naming the switch. Returns the load's time.
 */
export async function ensureContext(ctx: ServingContext, model: ModelDescriptor, numCtx: number | null): Promise<number> {
  if (numCtx === null) return 0;
  const current = ctx.scheduler.runnerFor(model.id)?.info.contextSize ?? model.settings.contextSize;
  // an unloaded model whose context is decided at load (null: the engine's choice) is loaded with the asked one
  if (current !== null && numCtx <= current) return 0;
  if (!ctx.config.ollama.allow_context_reload) {
    throw new LmxError(
      "context_length_exceeded",
      `options.num_ctx ${numCtx} is larger than the context '${model.id}' runs with (${current ?? "the engine's default"}) and this server does not reload models for it (ollama.allow_context_reload: false); send a smaller num_ctx or ask the operator to load the model with a larger context_size`,
      { param: "options.num_ctx" },
    );
  }
  const { runner } = await ctx.scheduler.load(model, { contextSize: numCtx });
  if (runner.info.contextSize < numCtx) {
    throw new LmxError(
      "context_length_exceeded",
      `options.num_ctx ${numCtx} is larger than '${model.id}' can run with here (${runner.info.contextSize} tokens after the reload)`,
      { param: "options.num_ctx" },
    );
  }
  return runner.info.loadMs;
}

/** The generated text is the answer: no template, no markup to read. */
function textParser(): OutputParser {
  return {
    push: (text) => (text ? [{ type: "content", text }] : []),
    finish: () => ({ events: [], outcome: "none" }),
  };
}

function rawPlan(prompt: string): ChatPlan {
  return { family: "generic", thinking: false, prompt, grammar: null, forced: false, stops: [], preservedTokens: [], newParser: textParser };
}

export async function startOllamaGeneration(ctx: ServingContext, input: OllamaGenerationInput): Promise<OllamaGeneration> {
  const model = await generationModel(ctx, input.model);
  if (input.recorder) input.recorder.model = model.id;
  const wasLoaded = ctx.scheduler.runnerFor(model.id) !== null;
  let loadMs = await ensureContext(ctx, model, input.numCtx);
  if (input.loadOnly) return loadOnly(ctx, model, input, wasLoaded);
  const raw = input.raw;
  const runStart = performance.now();
  // the prompt as written for raw requests and models without a template; the model's template otherwise
  const plan = (template: TemplateInfo): ChatPlan =>
    raw && (raw.always || template.jinja === null) ? rawPlan(raw.prompt) : planChat(input.job, template, input.sampling.maxTokens);
  const run = await startChatRun(ctx, { model, job: input.job, plan, sampling: input.sampling, ...originOf(input) }, input.outcomes);
  const firstAt = performance.now();
  if (!wasLoaded && loadMs === 0) loadMs = ctx.scheduler.runnerFor(model.id)?.info.loadMs ?? 0;
  return { model, headers: run.runnerHeaders, pieces: pieces(ctx, model, input, run.events, { runStart, firstAt, loadMs }) };
}

async function loadOnly(ctx: ServingContext, model: ModelDescriptor, input: OllamaGenerationInput, wasLoaded: boolean): Promise<OllamaGeneration> {
  const start = performance.now();
  const unload = input.keepAlive.kind === "unload";
  let headers: Record<string, string> = {};
  // an unload of a model that is not loaded loads nothing
  if (!unload || wasLoaded) {
    const lease = await ctx.scheduler.acquire(model, input.signal, input.priority);
    headers = { "x-lmx-backend": lease.runner.info.backend, "x-lmx-context-size": String(lease.runner.info.contextSize) };
    lease.release();
  }
  if (unload) await ctx.scheduler.unload(model.id, ctx.config.shutdown_timeout_sec * 1000, "keep_alive 0 (Ollama API)");
  const loadNs = wasLoaded || unload ? 0 : ns(performance.now() - start);
  const stats: OllamaStats = { totalNs: ns(performance.now() - input.startedAt), loadNs, promptNs: 0, evalNs: 0 };
  async function* one(): AsyncIterable<OllamaPiece> {
    yield { type: "done", reason: unload ? "unload" : "load", usage: { promptTokens: 0, cachedTokens: 0, completionTokens: 0 }, stats };
  }
  return { model, headers, pieces: one() };
}

async function* pieces(
  ctx: ServingContext,
  model: ModelDescriptor,
  input: OllamaGenerationInput,
  events: AsyncIterable<ChoiceEvent>,
  times: { runStart: number; firstAt: number; loadMs: number },
): AsyncIterable<OllamaPiece> {
  // Ollama sends a tool call whole (arguments as an object): calls are gathered and sent with the last text
  const calls = new Map<number, { name: string; args: string }>();
  let done: OllamaPiece | null = null;
  for await (const event of events) {
    switch (event.type) {
      case "content":
        if (event.text) yield { type: "delta", content: event.text, thinking: "", toolCalls: [] };
        break;
      case "reasoning":
        if (event.text && input.showThinking) yield { type: "delta", content: "", thinking: event.text, toolCalls: [] };
        break;
      case "tool_call_start":
        calls.set(event.index, { name: event.name, args: "" });
        break;
      case "tool_call_arguments": {
        const call = calls.get(event.index);
        if (call) call.args += event.text;
        break;
      }
      case "error":
        yield { type: "error", error: event.error };
        return;
      case "finish": {
        const toolCalls: OllamaToolCall[] = [];
        let unreadable = "";
        for (const call of calls.values()) {
          const args = parseObject(call.args);
          if (args) toolCalls.push({ function: { name: call.name, arguments: args } });
          else unreadable += call.args;
        }
        if (toolCalls.length > 0 || unreadable) yield { type: "delta", content: unreadable, thinking: "", toolCalls };
        const now = performance.now();
        const promptMs = Math.max(0, times.firstAt - times.runStart - times.loadMs);
        done = {
          type: "done",
          reason: event.reason === "length" ? "length" : "stop",
          usage: event.usage,
          stats: { totalNs: ns(now - input.startedAt), loadNs: ns(times.loadMs), promptNs: ns(promptMs), evalNs: ns(now - times.firstAt) },
        };
        break;
      }
    }
  }
  // the run's lease is released once its events end: only then may keep_alive 0 unload the model
  if (done && input.keepAlive.kind === "unload" && ctx.scheduler.admission.activity(model.id) === 0) {
    void ctx.scheduler.unload(model.id, ctx.config.shutdown_timeout_sec * 1000, "keep_alive 0 (Ollama API)").catch(() => false);
  }
  if (done) yield done;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text === "" ? "{}" : text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export type OllamaAnswerInput = Omit<GenerateInput, "endpoint" | "body"> & {
  kind: OllamaKind;
  body: OllamaChatRequest | OllamaGenerateRequest;
  /** performance.now() when the request arrived. */
  startedAt: number;
};

const NDJSON = "application/x-ndjson";

/**
 * /api/chat and /api/generate answered whole or as NDJSON. Refusals before the first generated text are thrown;
 * a whole answer is written only once it is complete, so a failure before then is thrown too (its own status).
 */
export async function answerOllama(ctx: ServingContext, input: OllamaAnswerInput): Promise<GenerateOutcome> {
  const { body, kind, signal } = input;
  const generate = kind === "generate" ? (body as OllamaGenerateRequest) : null;
  const job = generate ? generateJobOf(generate) : chatJobOf(body as OllamaChatRequest);
  const { sampling, numCtx } = samplingOf(body.options);
  let started: OllamaGeneration;
  try {
    started = await startOllamaGeneration(ctx, {
      model: body.model,
      job,
      raw: generate ? { prompt: generate.prompt, always: generate.raw === true } : null,
      showThinking: thinkingOf(body.think).show,
      sampling,
      numCtx,
      keepAlive: keepAliveOf(body.keep_alive),
      loadOnly: generate ? generate.prompt === "" : (body as OllamaChatRequest).messages.length === 0,
      startedAt: input.startedAt,
      signal,
      priority: input.priority,
      recorder: input.recorder,
      runnerHeaders: input.runnerHeaders,
      outcomes: input.chatOutcomes ?? null,
    });
  } catch (error) {
    if (signal.aborted) return { kind: "client_left" };
    throw error;
  }
  const id = `ollama-${input.headers["x-request-id"] ?? ""}`;
  const raw = input.response.raw;
  if (body.stream === false) {
    const whole: OllamaDelta = { content: "", thinking: "", toolCalls: [] };
    for await (const piece of started.pieces) {
      if (piece.type === "delta") {
        whole.content += piece.content;
        whole.thinking += piece.thinking;
        whole.toolCalls.push(...piece.toolCalls);
      } else if (piece.type === "error") {
        if (signal.aborted) return { kind: "client_left" };
        // nothing was sent yet: the failure is answered with its own status
        throw piece.error;
      } else {
        input.response.hijack();
        raw.writeHead(200, { ...input.headers, ...started.headers, "content-type": "application/json" });
        raw.end(JSON.stringify(doneObject(kind, body.model, whole, piece.reason, piece.usage, piece.stats)));
        return { kind: "answered", completionId: id };
      }
    }
    if (signal.aborted) return { kind: "client_left" };
    throw new LmxError("internal_error", "the generation ended without its last event");
  }
  input.response.hijack();
  raw.writeHead(200, { ...input.headers, ...started.headers, "content-type": NDJSON, "cache-control": "no-cache", "x-accel-buffering": "no" });
  const send = deadlineWriter(raw, signal, deadlineFor(input, started.model.id));
  const write = (value: unknown): Promise<boolean> => send(`${JSON.stringify(value)}\n`);
  for await (const piece of started.pieces) {
    if (piece.type === "delta") {
      if (!(await write(pieceObject(kind, body.model, piece)))) return { kind: "client_left" };
    } else if (piece.type === "error") {
      if (signal.aborted) return { kind: "client_left" };
      raw.end(streamedErrorFor("ollama", piece.error));
      return { kind: "failed", completionId: id, error: piece.error };
    } else {
      const last: OllamaDelta = { content: "", thinking: "", toolCalls: [] };
      raw.end(`${JSON.stringify(doneObject(kind, body.model, last, piece.reason, piece.usage, piece.stats))}\n`);
      return { kind: "answered", completionId: id };
    }
  }
  return { kind: "client_left" };
}
