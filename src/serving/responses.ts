/**
 * POST /v1/responses: OpenAI's Responses API over the chat layer. The stored chain (previous_response_id) and
 * this input become one chat job; its run is written as a Response object or as the Responses stream events, and
 * a finished answer is stored (store: true, the default) for the next turn and for GET /v1/responses/{id}.
 */
import { LmxError, toHttp } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import { messageItemText, normalizeInput, newItemId, type ResponseItem } from "../api/openai/responses/items.js";
import type { ResponseCreateRequest } from "../api/openai/responses/schema.js";
import { chatJobFromResponses, chatRequestFrom } from "../api/openai/responses/to-chat.js";
import { initialResponse, ResponseAssembler, type ResponseObject, type ResponseStreamEvent } from "../api/openai/responses/wire.js";
import type { ResponsesStore } from "../state/responses-store.js";
import type { ServingContext } from "./context.js";
import { originOf, startChatRun, type ChatRun } from "./chat.js";
import { GENERATION_ENDPOINTS, resolveServable, type GenerateInput, type GenerateOutcome } from "./generate.js";
import { deadlineFor, deadlineWriter } from "./write-deadline.js";

export type StoredResponses = ResponsesStore<ResponseItem, ResponseObject>;

export interface ResponsesInput extends Omit<GenerateInput, "endpoint" | "body"> {
  body: ResponseCreateRequest;
}

export async function answerResponse(ctx: ServingContext, store: StoredResponses, input: ResponsesInput): Promise<GenerateOutcome> {
  const { body, signal, recorder } = input;
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const history = chainOf(store, body.previous_response_id ?? null);
  const items = normalizeInput(body.input);
  const conversion = chatRequestFrom(body, history, items);
  // everything a client can get wrong is refused before a model is loaded
  const job = chatJobFromResponses(conversion);
  const bytes = conversationBytes(body.instructions ?? "", [...history, ...items]);
  if (bytes > ctx.config.max_prompt_bytes) {
    throw new LmxError(
      "request_too_large",
      `the conversation's text is ${bytes} bytes; this server accepts at most ${ctx.config.max_prompt_bytes} (max_prompt_bytes) per request`,
      { param: "input" },
    );
  }
  const { model, equivalent } = await resolveServable(ctx, body.model, GENERATION_ENDPOINTS["/v1/chat/completions"].accepts, recorder);
  let run: ChatRun;
  try {
    run = await startChatRun(
      ctx,
      {
        model,
        job,
        sampling: {
          maxTokens: body.max_output_tokens ?? null,
          temperature: body.temperature,
          topP: body.top_p,
          seed: body.seed,
          stop: [],
        },
        ...originOf({ ...input, recorder }),
      },
      input.chatOutcomes ?? null,
    );
  } catch (error) {
    if (signal.aborted) return { kind: "client_left" };
    throw error;
  }
  const id = newItemId("resp");
  const assembler = new ResponseAssembler(initialResponse(id, model.id, body, Math.floor(Date.now() / 1000)));
  const raw = input.response.raw;
  input.response.hijack();
  const headers = { ...input.headers, ...run.runnerHeaders, ...servedAs(equivalent), "cache-control": "no-cache" };
  const keep = (response: ResponseObject) => {
    if (body.store !== false && (response.status === "completed" || response.status === "incomplete")) store.save({ response, input: items });
  };

  if (body.stream !== true) {
    for await (const event of run.events) assembler.add(event);
    if (signal.aborted) return { kind: "client_left" };
    assembler.finish();
    const failure = assembler.failed;
    if (failure) {
      // nothing was written yet: the failure is answered as an error, as it would have been before the run
      const { status, headers: errorHeaders, body: errorBody } = toHttp(failure);
      raw.writeHead(status, { ...headers, ...errorHeaders, "content-type": "application/json" });
      raw.end(JSON.stringify(errorBody));
      return { kind: "failed", completionId: id, error: failure };
    }
    const response = assembler.response();
    keep(response);
    raw.writeHead(200, { ...headers, "content-type": "application/json" });
    raw.end(JSON.stringify(response));
    return { kind: "answered", completionId: id };
  }

  raw.writeHead(200, {
    ...headers,
    "content-type": "text/event-stream; charset=utf-8",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  let sequence = 0;
  const send = deadlineWriter(raw, signal, deadlineFor(input, model.id));
  const write = async (events: ResponseStreamEvent[]): Promise<boolean> => {
    for (const event of events) {
      if (!(await send(`event: ${event.type}\ndata: ${JSON.stringify({ ...event, sequence_number: sequence++ })}\n\n`))) return false;
    }
    return true;
  };
  if (!(await write(assembler.start()))) return { kind: "client_left" };
  for await (const event of run.events) {
    if (!(await write(assembler.add(event)))) return { kind: "client_left" };
  }
  if (signal.aborted) return { kind: "client_left" };
  const closing = assembler.finish();
  const failure = assembler.failed;
  if (!failure) keep(assembler.response());
  if (!(await write(closing))) return { kind: "client_left" };
  raw.end();
  return failure ? { kind: "failed", completionId: id, error: failure } : { kind: "answered", completionId: id };
}

/** The stored conversation before this input; an unknown id (or one whose chain lost a link) is a 404. */
function chainOf(store: StoredResponses, previous: string | null): ResponseItem[] {
  if (previous === null) return [];
  const chain = store.chain(previous);
  if (chain.kind === "found") return chain.items;
  const message =
    chain.id === previous
      ? `no stored response has the id '${previous}' (responses are stored only with store: true, the default)`
      : `the conversation of '${previous}' passes through '${chain.id}', which was deleted; its turns cannot be restored`;
  throw new LmxError("not_found", message, { param: "previous_response_id" });
}

/** The text a runner will tokenize, as max_prompt_bytes counts it for chat completions. */
function conversationBytes(instructions: string, items: ResponseItem[]): number {
  let bytes = Buffer.byteLength(instructions);
  for (const item of items) {
    if (item.type === "message") bytes += Buffer.byteLength(messageItemText(item));
    else if (item.type === "function_call") bytes += Buffer.byteLength(item.arguments);
    else if (item.type === "function_call_output") bytes += Buffer.byteLength(item.output);
    else for (const part of item.content) bytes += Buffer.byteLength(part.text);
  }
  return bytes;
}

function servedAs(equivalent: ModelDescriptor | null): Record<string, string> {
  return equivalent ? { "x-lmx-served-model": equivalent.id } : {};
}
