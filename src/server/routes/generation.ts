/** /v1/chat/completions, /v1/completions, /v1/embeddings: validate, admit, load if needed, forward. */
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { unservableReason } from "../../inventory/inventory.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import {
  chatCompletionRequestSchema,
  completionRequestSchema,
  embeddingRequestSchema,
  parseRequest,
} from "../../openai/schemas.js";
import type { RequestRecorder } from "../../metrics/request.js";
import { traceContextFor, type TraceContext } from "../../metrics/trace.js";
import type { GatewayContext } from "../context.js";
import { asLmxError } from "../errors.js";
import { forwardToRunner, type ForwardOutcome } from "../proxy.js";
import { checkPromptSize } from "../prompt-size.js";

type Endpoint = {
  path: "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings";
  schema: z.ZodType<{ model: string; stream?: boolean | null | undefined }>;
  idPrefix: string;
  accepts: (model: ModelDescriptor) => LmxError | null;
};

const generationOnly = (model: ModelDescriptor) =>
  model.type === "embedding"
    ? new LmxError("model_is_embedding", `model '${model.id}' is an embedding model; use /v1/embeddings`, { param: "model" })
    : null;

const ENDPOINTS: Endpoint[] = [
  { path: "/v1/chat/completions", schema: chatCompletionRequestSchema, idPrefix: "chatcmpl-", accepts: generationOnly },
  { path: "/v1/completions", schema: completionRequestSchema, idPrefix: "cmpl-", accepts: generationOnly },
  {
    path: "/v1/embeddings",
    schema: embeddingRequestSchema,
    idPrefix: "emb-",
    accepts: (model) =>
      model.type === "embedding"
        ? null
        : new LmxError("model_not_embedding", `model '${model.id}' is not an embedding model; set type: embedding for it in the config`, {
            param: "model",
          }),
  },
];

/** What the route knows about one request across Fastify's hooks and the handler. */
interface RequestState {
  trace: TraceContext;
  recorder: RequestRecorder;
  /** What the error handler answered with, for lmx:requests_total. */
  error: LmxError | null;
  /** The handler counts the request itself once the runner answered (the reply is hijacked from then on). */
  countedByHandler: boolean;
}

const states = new WeakMap<FastifyRequest, RequestState>();

/** Usually made in onRequest; made late for a request refused by an earlier hook (an API key check). */
function stateOf(ctx: GatewayContext, request: FastifyRequest): RequestState {
  let state = states.get(request);
  if (!state) {
    const trace = traceContextFor(request.headers);
    state = { trace, recorder: ctx.metrics.startRequest(performance.now()), error: null, countedByHandler: false };
    states.set(request, state);
    // every line this request logs (the error handler's too) names its trace and, through Fastify, its request id
    request.log = request.log.child({ trace_id: trace.traceId, span_id: trace.spanId, traceparent: trace.traceparent });
  }
  return state;
}

export function registerGenerationRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  for (const endpoint of ENDPOINTS) {
    app.post(
      endpoint.path,
      {
        onRequest: async (request) => {
          stateOf(ctx, request);
        },
        onError: async (request, _reply, error) => {
          stateOf(ctx, request).error = asLmxError(error);
        },
        onSend: async (request, reply, payload) => {
          reply.header("traceparent", stateOf(ctx, request).trace.traceparent);
          return payload;
        },
        // answers that did not reach the runner: refusals, and errors before the runner's first byte
        onResponse: async (request, reply) => {
          const state = stateOf(ctx, request);
          if (state.countedByHandler) return;
          state.recorder.finish(reply.statusCode, state.error?.code ?? "", performance.now());
          logFinished(request, state, reply.statusCode);
        },
      },
      (request, reply) => serve(ctx, endpoint, request, reply),
    );
  }
}

async function serve(ctx: GatewayContext, endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const state = stateOf(ctx, request);
  const { recorder, trace } = state;
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const body = parseRequest(endpoint.schema, request.body);
  checkPromptSize(body, ctx.config.max_prompt_bytes);
  const requested = await ctx.inventory.resolve(body.model);
  // an MLX/safetensors repo no backend here opens may be served by a local GGUF of the same model, if allowed
  const equivalent =
    ctx.config.gguf_fallback_enabled && unservableReason(requested)?.code === "backend_unavailable" ? ctx.inventory.ggufEquivalent(requested) : null;
  const model = equivalent ?? requested;
  recorder.model = model.id;
  // a bad file is left to the model manager, which records it and quarantines what keeps failing
  const unservable = unservableReason(model);
  const refusal = (unservable?.code === "model_file_invalid" ? null : unservable) ?? endpoint.accepts(model);
  if (refusal) throw refusal;

  // A client that goes away must stop its generation in the runner and free its place in the queue.
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) abort.abort();
  };
  reply.raw.on("close", onClose);
  // A client that left gets no answer, so no onResponse either: count it here.
  const clientLeft = () => {
    state.countedByHandler = true;
    recorder.finish(CLIENT_CLOSED, CLIENT_CLOSED_CODE, performance.now());
    logFinished(request, state, CLIENT_CLOSED, undefined, CLIENT_CLOSED_CODE);
  };

  const waitStart = performance.now();
  let lease;
  try {
    lease = await ctx.admission.acquire(model.id, model.settings.parallel, abort.signal);
  } catch (error) {
    if (abort.signal.aborted) clientLeft();
    throw error;
  }
  recorder.queued(performance.now() - waitStart);
  try {
    const runner = await ctx.models.ensureLoaded(model);
    if (abort.signal.aborted) return clientLeft();
    ctx.models.touch(model.id);
    const requestId = endpoint.idPrefix + randomBytes(12).toString("hex");
    state.countedByHandler = true;
    let outcome: ForwardOutcome;
    try {
      outcome = await forwardToRunner(reply, {
        runner,
        path: endpoint.path,
        body: { ...body, model: model.id },
        requestId,
        stream: body.stream === true,
        signal: abort.signal,
        // the runner configuration that answered: a client can see an operator's reload with other settings
        extraHeaders: {
          "x-request-id": String(request.id),
          traceparent: trace.traceparent,
          "x-lmx-backend": runner.info.backend,
          "x-lmx-context-size": String(runner.info.contextSize),
          "x-lmx-parallel": String(runner.info.parallel),
          ...(equivalent ? { "x-lmx-served-model": equivalent.id } : {}),
        },
        // the runner is the next hop of the trace (it ignores the headers today)
        runnerHeaders: trace.tracestate ? { traceparent: trace.traceparent, tracestate: trace.tracestate } : { traceparent: trace.traceparent },
        recorder,
        writeDeadline: {
          ms: ctx.config.stream_write_timeout_sec * 1000,
          onTimeout: () => {
            ctx.metrics.streamWriteTimeouts.inc({ model: model.id });
            request.log.warn({ model: model.id, completion_id: requestId }, "client left the answer unread for stream_write_timeout_sec: cut, sequence freed");
          },
        },
      });
    } catch (error) {
      // refused before any byte went out: the error handler answers, and onResponse counts it
      state.countedByHandler = false;
      throw error;
    }
    if (outcome.kind === "client_closed" || abort.signal.aborted) return clientLeft();
    if (outcome.kind === "failed") {
      // the 200 went out before the runner broke: count the request with the status its error stands for
      state.error = outcome.error;
      request.log.warn({ code: outcome.error.code, completion_id: requestId }, `generation failed mid-answer: ${outcome.error.message}`);
      recorder.finish(outcome.error.status, outcome.error.code, performance.now());
      logFinished(request, state, outcome.error.status, requestId);
      return;
    }
    recorder.finish(200, "", performance.now());
    logFinished(request, state, 200, requestId);
  } finally {
    ctx.models.touch(model.id, true);
    lease.release();
  }
}

/** nginx's "client closed request": never sent, only counted and logged. */
const CLIENT_CLOSED = 499;
const CLIENT_CLOSED_CODE = "client_closed";

function logFinished(request: FastifyRequest, state: RequestState, status: number, completionId?: string, code: string | undefined = state.error?.code): void {
  // per-request lines only at debug: a fleet of bots would otherwise drown the log
  request.log.debug(
    { model: state.recorder.model, status, code, completion_id: completionId, parent_span_id: state.trace.parentSpanId },
    "generation request finished",
  );
}
