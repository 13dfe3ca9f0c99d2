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
import type { GatewayContext } from "../context.js";
import { forwardToRunner } from "../proxy.js";

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

export function registerGenerationRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  for (const endpoint of ENDPOINTS) {
    app.post(endpoint.path, (request, reply) => serve(ctx, endpoint, request, reply));
  }
}

async function serve(ctx: GatewayContext, endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const body = parseRequest(endpoint.schema, request.body);
  const model = await ctx.inventory.resolve(body.model);
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

  const lease = await ctx.admission.acquire(model.id, model.settings.parallel, abort.signal);
  try {
    const runner = await ctx.models.ensureLoaded(model);
    if (abort.signal.aborted) return;
    ctx.models.touch(model.id);
    const requestId = endpoint.idPrefix + randomBytes(12).toString("hex");
    await forwardToRunner(reply, {
      runner,
      path: endpoint.path,
      body: { ...body, model: model.id },
      requestId,
      stream: body.stream === true,
      signal: abort.signal,
      // the runner configuration that answered: a client can see an operator's reload with other settings
      extraHeaders: {
        "x-request-id": String(request.id),
        "x-lmx-backend": runner.info.backend,
        "x-lmx-context-size": String(runner.info.contextSize),
        "x-lmx-parallel": String(runner.info.parallel),
      },
    });
  } finally {
    ctx.models.touch(model.id, true);
    lease.release();
  }
}
