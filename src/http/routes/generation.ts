/** /v1/chat/completions, /v1/completions, /v1/embeddings: the HTTP side (validation, metrics, logs) of src/serving/generate.ts. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { chatCompletionRequestSchema, completionRequestSchema, embeddingRequestSchema, parseRequest } from "../../api/openai/schemas.js";
import type { RequestRecorder } from "../../metrics/request.js";
import { traceContextFor, type TraceContext } from "../../metrics/trace.js";
import type { GatewayContext } from "../context.js";
import { asLmxError } from "../errors.js";
import { apiKeyOf, sameKey } from "../auth.js";
import { isPriority, PRIORITIES, type Priority } from "../../scheduler/priority.js";
import { checkPromptSize } from "../../serving/prompt-size.js";
import type { ChatOutcomeSink } from "../../serving/chat.js";
import { VIA_HEADER } from "../../nodes/node.js";
import { generate, GENERATION_ENDPOINTS, type GenerateInput, type GenerateOutcome, type GenerationEndpoint } from "../../serving/generate.js";

const ROUTES = [
  { endpoint: GENERATION_ENDPOINTS["/v1/chat/completions"], schema: chatCompletionRequestSchema },
  { endpoint: GENERATION_ENDPOINTS["/v1/completions"], schema: completionRequestSchema },
  { endpoint: GENERATION_ENDPOINTS["/v1/embeddings"], schema: embeddingRequestSchema },
] as const;

type BodySchema = z.ZodType<{ model: string; stream?: boolean | null | undefined }>;

/** What the route knows about one request across Fastify's hooks and the handler. */
interface RequestState {
  trace: TraceContext;
  recorder: RequestRecorder;
  /** What the error handler answered with, for lmx:requests_total. */
  error: LmxError | null;
  /** The handler counts the request itself once the runner answered (the reply is hijacked from then on). */
  countedByHandler: boolean;
  /** Its class, once the body was read; named in the lines this request logs. */
  priority: Priority | null;
}

const states = new WeakMap<FastifyRequest, RequestState>();

/** Usually made in onRequest; made late for a request refused by an earlier hook (an API key check). */
function stateOf(ctx: GatewayContext, request: FastifyRequest): RequestState {
  let state = states.get(request);
  if (!state) {
    const trace = traceContextFor(request.headers);
    state = { trace, recorder: ctx.metrics.startRequest(performance.now()), error: null, countedByHandler: false, priority: null };
    states.set(request, state);
    // every line this request logs (the error handler's too) names its trace and, through Fastify, its request id
    request.log = request.log.child({ trace_id: trace.traceId, span_id: trace.spanId, traceparent: trace.traceparent });
  }
  return state;
}

export function registerGenerationRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  for (const { endpoint, schema } of ROUTES) {
    app.post(endpoint.path, generationRouteHooks(ctx), (request, reply) => serve(ctx, endpoint, schema, request, reply));
  }
}

/** The hooks every generation route counts, traces and logs its requests with (the Responses API's too). */
export function generationRouteHooks(ctx: GatewayContext) {
  return {
    onRequest: async (request: FastifyRequest) => {
      stateOf(ctx, request);
    },
    onError: async (request: FastifyRequest, _reply: FastifyReply, error: unknown) => {
      stateOf(ctx, request).error = asLmxError(error);
    },
    onSend: async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      reply.header("traceparent", stateOf(ctx, request).trace.traceparent);
      return payload;
    },
    // answers that did not reach the runner: refusals, and errors before the runner's first byte
    onResponse: async (request: FastifyRequest, reply: FastifyReply) => {
      const state = stateOf(ctx, request);
      if (state.countedByHandler) return;
      state.recorder.finish(reply.statusCode, state.error?.code ?? "", performance.now());
      logFinished(request, state, reply.statusCode);
    },
  };
}

/** Validates and hands the request to the generation use-case. */
async function serve(
  ctx: GatewayContext,
  endpoint: GenerationEndpoint,
  schema: BodySchema,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const body = parseRequest(schema, request.body);
  checkPromptSize(body, ctx.config.max_prompt_bytes);
  const fromNode = request.headers[VIA_HEADER] !== undefined;
  await serveCounted(ctx, request, reply, (common) => generate(ctx, { endpoint, body, fromNode, ...common }));
}

/** What a generation use-case gets from its route, whatever the dialect. */
export type GenerationRequestInput = Omit<GenerateInput, "endpoint" | "body">;

/** Hands a validated request to a use-case, and counts and logs how it ended. */
export async function serveCounted(
  ctx: GatewayContext,
  request: FastifyRequest,
  reply: FastifyReply,
  answer: (input: GenerationRequestInput) => Promise<GenerateOutcome>,
): Promise<void> {
  const state = stateOf(ctx, request);
  const { recorder, trace } = state;
  const priority = priorityOf(ctx, request);
  // named in this request's log lines (a field, not a third child logger per request on the hot path)
  state.priority = priority;
  // A client that goes away must stop its generation in the runner and free its place in the queue.
  const abort = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  // once the runner accepted the request the answer is written by the relay: count it here, not in onResponse
  state.countedByHandler = true;
  let outcome: GenerateOutcome;
  try {
    outcome = await answer({
      response: reply,
      signal: abort.signal,
      headers: { "x-request-id": String(request.id), traceparent: trace.traceparent },
      // the runner is the next hop of the trace
      runnerHeaders: trace.tracestate ? { traceparent: trace.traceparent, tracestate: trace.tracestate } : { traceparent: trace.traceparent },
      recorder,
      priority,
      chatOutcomes: chatOutcomeSink(ctx),
      writeDeadline: {
        ms: ctx.config.stream_write_timeout_sec * 1000,
        onTimeout: (model) => {
          ctx.metrics.streamWriteTimeouts.inc({ model });
          request.log.warn({ model, priority }, "client left the answer unread for stream_write_timeout_sec: cut, sequence freed");
        },
      },
    });
  } catch (error) {
    // refused before any byte went out: the error handler answers, and onResponse counts it
    state.countedByHandler = false;
    throw error;
  }
  if (outcome.kind === "client_left") {
    // a client that left gets no answer, so no onResponse either; the connection is gone, nothing is sent
    if (!reply.sent) reply.hijack();
    recorder.finish(CLIENT_CLOSED, CLIENT_CLOSED_CODE, performance.now());
    logFinished(request, state, CLIENT_CLOSED, undefined, CLIENT_CLOSED_CODE);
    return;
  }
  if (outcome.kind === "failed") {
    // the 200 went out before the runner broke: count the request with the status its error stands for
    state.error = outcome.error;
    request.log.warn(
      { code: outcome.error.code, completion_id: outcome.completionId, priority },
      `generation failed mid-answer: ${outcome.error.message}`,
    );
    recorder.finish(outcome.error.status, outcome.error.code, performance.now());
    logFinished(request, state, outcome.error.status, outcome.completionId);
    return;
  }
  recorder.finish(200, "", performance.now());
  logFinished(request, state, 200, outcome.completionId);
}

/** Tool-calling and JSON outcomes go to the metrics and the conformance registry. */
export function chatOutcomeSink(ctx: GatewayContext): ChatOutcomeSink {
  return {
    record(model, backend, plan, outcome) {
      if (outcome === "json_valid" || outcome === "json_invalid") {
        ctx.metrics.structuredOutputs.inc({ model, outcome: outcome === "json_valid" ? "valid" : "invalid" });
      } else {
        ctx.metrics.toolCalls.inc({ model, family: plan.family, outcome });
      }
      ctx.conformance.record(model, plan.family, backend, outcome);
    },
  };
}

/** `x-priority`, else the class of the request's API key, else the configured default; anything else is a 400. */
export function priorityOf(ctx: GatewayContext, request: FastifyRequest): Priority {
  const header = request.headers["x-priority"];
  if (header !== undefined) {
    const value = Array.isArray(header) ? header[0] : header;
    if (!isPriority(value)) {
      throw new LmxError("invalid_value", `x-priority must be one of ${PRIORITIES.join(", ")}; got '${String(value).slice(0, 40)}'`, {
        param: "x-priority",
      });
    }
    return value;
  }
  const key = apiKeyOf(request);
  if (key) {
    for (const [known, priority] of Object.entries(ctx.config.priority.by_api_key)) if (sameKey(key, known)) return priority;
  }
  return ctx.config.priority.default;
}

/** nginx's "client closed request": never sent, only counted and logged. */
const CLIENT_CLOSED = 499;
const CLIENT_CLOSED_CODE = "client_closed";

function logFinished(
  request: FastifyRequest,
  state: RequestState,
  status: number,
  completionId?: string,
  code: string | undefined = state.error?.code,
): void {
  // per-request lines only at debug: a fleet of bots would otherwise drown the log
  request.log.debug(
    { model: state.recorder.model, status, code, priority: state.priority, completion_id: completionId, parent_span_id: state.trace.parentSpanId },
    "generation request finished",
  );
}
