/**
 * /v1/responses: POST (src/serving/responses.ts, counted and traced like the other generation routes), and the
 * stored responses: GET one, DELETE one, GET its input items.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { LmxError } from "../../errors/codes.js";
import { parseRequest } from "../../api/openai/schemas.js";
import type { ResponseItem } from "../../api/openai/responses/items.js";
import { responseCreateRequestSchema } from "../../api/openai/responses/schema.js";
import type { ResponseObject } from "../../api/openai/responses/wire.js";
import { answerResponse, type StoredResponses } from "../../serving/responses.js";
import { ResponsesStore } from "../../state/responses-store.js";
import type { GatewayContext } from "../context.js";
import { generationRouteHooks, serveCounted } from "./generation.js";

const idParams = z.strictObject({ id: z.string().min(1).max(256) });

const retrieveQuery = z.strictObject({
  stream: z.enum(["false"], { message: "replaying a stored response as a stream is not supported; retrieve it whole" }).optional(),
  include: z.union([z.string(), z.array(z.string())]).optional(),
  include_obfuscation: z.string().optional(),
});

const inputItemsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  after: z.string().min(1).max(256).optional(),
  // OpenAI's field selector; nothing extra exists to include here
  include: z.union([z.string(), z.array(z.string())]).optional(),
});

export function registerResponsesRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const store: StoredResponses = new ResponsesStore<ResponseItem, ResponseObject>(ctx.storage);

  app.post("/v1/responses", generationRouteHooks(ctx), async (request, reply) => {
    const body = parseRequest(responseCreateRequestSchema, request.body);
    await serveCounted(ctx, request, reply, (common) => answerResponse(ctx, store, { ...common, body }));
  });

  app.get("/v1/responses/:id", async (request) => {
    const { id } = idParams.parse(request.params);
    parseRequest(retrieveQuery, request.query ?? {});
    return storedOrNotFound(store, id).response;
  });

  app.delete("/v1/responses/:id", async (request) => {
    const { id } = idParams.parse(request.params);
    if (!store.delete(id)) throw notFound(id);
    return { id, object: "response.deleted", deleted: true };
  });

  app.get("/v1/responses/:id/input_items", async (request) => {
    const { id } = idParams.parse(request.params);
    const query = parseRequest(inputItemsQuery, request.query ?? {});
    const items = storedOrNotFound(store, id).input;
    const ordered = query.order === "asc" ? items : [...items].reverse();
    let start = 0;
    if (query.after !== undefined) {
      start = ordered.findIndex((item) => item.id === query.after) + 1;
      if (start === 0) throw new LmxError("invalid_value", `no input item of '${id}' has the id '${query.after}'`, { param: "after" });
    }
    const limit = query.limit ?? 20;
    const data = ordered.slice(start, start + limit);
    return {
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < ordered.length,
    };
  });
}

function storedOrNotFound(store: StoredResponses, id: string) {
  const stored = store.get(id);
  if (!stored) throw notFound(id);
  return stored;
}

function notFound(id: string): LmxError {
  return new LmxError("not_found", `no stored response has the id '${id}'`, { param: "id" });
}
