/**
 * The generation use-case, whatever the dialect: resolve the model (or its GGUF equivalent), check that this
 * endpoint accepts it, take a lease from the scheduler, relay to the runner, release. Refusals before the first
 * byte are thrown (the HTTP layer answers them in the caller's dialect); what happened after is the outcome.
 */
import { randomBytes } from "node:crypto";
import { LmxError } from "../errors/codes.js";
import { RUNNER_PRIORITY_HEADER } from "../runner/protocol.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RequestRecorder } from "../metrics/request.js";
import type { ModelLease } from "../scheduler/scheduler.js";
import type { Priority } from "../scheduler/priority.js";
import type { ServingContext } from "./context.js";
import { forwardToRunner, type ForwardOutcome, type ResponseSink } from "./relay.js";
import type { ChatCompletionRequest } from "../api/openai/schemas.js";
import { chatJobFrom, needsChatLayer } from "../chat/request.js";
import { answerChatCompletion } from "./chat-completion.js";
import type { CompletionRequest } from "../api/openai/schemas.js";
import { answerTextCompletion, needsRawCompletion } from "./text-completion.js";
import type { ChatOutcomeSink } from "./chat.js";

export type GenerationPath = "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings";

export interface GenerationEndpoint {
  path: GenerationPath;
  /** Prefix of the completion ids the runner writes (chatcmpl-, cmpl-, emb-). */
  idPrefix: string;
  /** Refuses a model this endpoint cannot use (an embedding model for chat, and the reverse). */
  accepts: (model: ModelDescriptor) => LmxError | null;
}

const generationOnly = (model: ModelDescriptor) =>
  model.type === "embedding"
    ? new LmxError("model_is_embedding", `model '${model.id}' is an embedding model; use /v1/embeddings`, { param: "model" })
    : null;

export const GENERATION_ENDPOINTS: Readonly<Record<GenerationPath, GenerationEndpoint>> = {
  "/v1/chat/completions": { path: "/v1/chat/completions", idPrefix: "chatcmpl-", accepts: generationOnly },
  "/v1/completions": { path: "/v1/completions", idPrefix: "cmpl-", accepts: generationOnly },
  "/v1/embeddings": {
    path: "/v1/embeddings",
    idPrefix: "emb-",
    accepts: (model) =>
      model.type === "embedding"
        ? null
        : new LmxError("model_not_embedding", `model '${model.id}' is not an embedding model; set type: embedding for it in the config`, {
            param: "model",
          }),
  },
};

export interface GenerateInput {
  endpoint: GenerationEndpoint;
  /** The validated request body. */
  body: { model: string; stream?: boolean | null | undefined };
  /** Where the answer goes: the raw response, taken over (hijacked) once the runner accepted the request. */
  response: ResponseSink;
  /** Aborted when the client goes away: its generation stops and its place in the queue is freed. */
  signal: AbortSignal;
  /** Sent to the client with the answer (request id, trace context). */
  headers: Record<string, string>;
  /** Sent to the runner (trace context). */
  runnerHeaders: Record<string, string>;
  recorder: RequestRecorder;
  priority: Priority;
  /** How long a client may leave written bytes unread before the answer is cut and its sequence freed. */
  writeDeadline?: { ms: number; onTimeout: (model: string) => void };
  /** Where tool-calling and JSON outcomes are counted (metrics, conformance registry). */
  chatOutcomes?: ChatOutcomeSink | null;
}

export type GenerateOutcome =
  { kind: "answered"; completionId: string } | { kind: "failed"; completionId: string; error: LmxError } | { kind: "client_left" };

/** The model a request names, or the local GGUF standing in for it; refused here when it cannot serve. */
export async function resolveServable(
  ctx: ServingContext,
  name: string,
  accepts: GenerationEndpoint["accepts"],
  recorder: RequestRecorder,
): Promise<{ model: ModelDescriptor; equivalent: ModelDescriptor | null }> {
  const requested = await ctx.inventory.resolve(name);
  // an MLX/safetensors repo no backend here opens may be served by a local GGUF of the same model, if allowed
  const equivalent =
    ctx.config.gguf_fallback_enabled && ctx.scheduler.unservableReason(requested)?.code === "backend_unavailable"
      ? ctx.inventory.ggufEquivalent(requested)
      : null;
  const model = equivalent ?? requested;
  recorder.model = model.id;
  // a bad file is left to the scheduler, which records it and quarantines what keeps failing
  const unservable = ctx.scheduler.unservableReason(model);
  const refusal = (unservable?.code === "model_file_invalid" ? null : unservable) ?? accepts(model);
  if (refusal) throw refusal;
  return { model, equivalent };
}

export async function generate(ctx: ServingContext, input: GenerateInput): Promise<GenerateOutcome> {
  const { endpoint, body, signal, recorder } = input;
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  // tools, JSON output, logprobs and n go through the chat layer; everything it refuses is refused before a load
  const chatBody = endpoint.path === "/v1/chat/completions" ? (body as ChatCompletionRequest) : null;
  // validated whichever path serves it: a tool_choice naming no offered tool is a 400 even without tools
  const validatedJob = chatBody ? chatJobFrom(chatBody, ctx.skills ?? undefined) : null;
  const chatJob = chatBody && needsChatLayer(chatBody) ? validatedJob : null;
  const rawCompletion = endpoint.path === "/v1/completions" && needsRawCompletion(body as CompletionRequest);
  const { model, equivalent } = await resolveServable(ctx, body.model, endpoint.accepts, recorder);
  if (chatJob || rawCompletion) {
    try {
      if (!chatJob) return await answerTextCompletion(ctx, input, model);
      return await answerChatCompletion(
        ctx,
        input,
        model,
        chatJob,
        input.chatOutcomes ?? null,
        equivalent ? { "x-lmx-served-model": equivalent.id } : {},
      );
    } catch (error) {
      if (signal.aborted) return { kind: "client_left" };
      throw error;
    }
  }

  const waitStart = performance.now();
  let lease: ModelLease;
  try {
    lease = await ctx.scheduler.acquire(model, signal, input.priority);
  } catch (error) {
    if (signal.aborted) return { kind: "client_left" };
    throw error;
  }
  recorder.queued(performance.now() - waitStart);
  try {
    if (signal.aborted) return { kind: "client_left" };
    const runner = lease.runner;
    const completionId = endpoint.idPrefix + randomBytes(12).toString("hex");
    const outcome: ForwardOutcome = await forwardToRunner(input.response, {
      runner,
      path: endpoint.path,
      body: { ...body, model: model.id },
      requestId: completionId,
      stream: body.stream === true,
      signal,
      // the runner configuration that answered: a client can see an operator's reload with other settings
      extraHeaders: {
        ...input.headers,
        "x-lmx-backend": runner.info.backend,
        "x-lmx-context-size": String(runner.info.contextSize),
        "x-lmx-parallel": String(runner.info.parallel),
        ...(equivalent ? { "x-lmx-served-model": equivalent.id } : {}),
      },
      // the class travels with the request (engines that schedule by priority can read it)
      runnerHeaders: { ...input.runnerHeaders, [RUNNER_PRIORITY_HEADER]: input.priority },
      recorder,
      ...(input.writeDeadline ? { writeDeadline: { ms: input.writeDeadline.ms, onTimeout: () => input.writeDeadline?.onTimeout(model.id) } } : {}),
    });
    if (outcome.kind === "client_closed" || signal.aborted) return { kind: "client_left" };
    if (outcome.kind === "failed") return { kind: "failed", completionId, error: outcome.error };
    return { kind: "answered", completionId };
  } finally {
    lease.release();
  }
}
