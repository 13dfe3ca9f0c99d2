/**
 * Ollama's API under /api/* (https://github.com/ollama/ollama/blob/main/docs/api.md): a translator at the edge
 * over the same chat layer, scheduler, downloader and metrics as /v1. Answers stream as NDJSON by default
 * (`stream: false` for one object); errors are `{"error": "..."}` with the status of our error table
 * (src/errors/dialects.ts picks the shape by path).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { readGgufFileInfo } from "node-llama-cpp";
import { LmxError } from "../../errors/codes.js";
import { streamedErrorFor } from "../../errors/dialects.js";
import { parseRequest } from "../../api/openai/schemas.js";
import {
  ollamaChatSchema,
  ollamaEmbeddingsSchema,
  ollamaEmbedSchema,
  ollamaGenerateSchema,
  ollamaModelNameSchema,
} from "../../api/ollama/schemas.js";
import { keepAliveOf } from "../../api/ollama/convert.js";
import { runningOf, showOf, tagOf } from "../../api/ollama/models.js";
import { detectFamily } from "../../chat/templates/family.js";
import type { RequestRecorder } from "../../metrics/request.js";
import { embedTexts } from "../../serving/ollama-embed.js";
import { answerOllama, resolveOllamaModel } from "../../serving/ollama-generate.js";
import { checkPromptSize } from "../../serving/prompt-size.js";
import { deleteDownloadedModel } from "../../serving/ollama-delete.js";
import { requireAdminKey } from "../auth.js";
import type { GatewayContext } from "../context.js";
import { asLmxError } from "../errors.js";
import { asLmxError as asDownloadLmxError, downloadRequestFor, startDownload } from "./downloads.js";
import { generationRouteHooks, priorityOf, serveCounted } from "./generation.js";

const NDJSON = "application/x-ndjson";
const PULL_POLL_MS = 200;

export function registerOllamaRoutes(api: FastifyInstance, ctx: GatewayContext): void {
  api.get("/api/version", async () => ({ version: ctx.version }));

  api.get("/api/tags", async () => ({ models: (await ctx.inventory.list()).map(tagOf) }));

  api.get("/api/ps", async () => {
    const models = [];
    for (const view of ctx.scheduler.loaded()) {
      const model = await ctx.inventory.resolve(view.id).catch(() => null);
      if (model) models.push(runningOf(view, model));
    }
    return { models };
  });

  api.post("/api/show", async (request) => {
    const body = parseRequest(ollamaModelNameSchema, request.body);
    const model = await resolveOllamaModel(ctx, (body.model ?? body.name)!);
    const runner = ctx.scheduler.runnerFor(model.id);
    const template = runner ? runner.info.template.jinja : await chatTemplateOf(model.path);
    return showOf(model, template, runner?.info.contextSize ?? model.settings.contextSize, detectFamily(template).thinking);
  });

  // counted, traced and logged as /v1 generations are
  for (const kind of ["chat", "generate"] as const) {
    api.post(`/api/${kind}`, generationRouteHooks(ctx), async (request, reply) => {
      const startedAt = performance.now();
      const body = parseRequest(kind === "chat" ? ollamaChatSchema : ollamaGenerateSchema, request.body);
      checkPromptSize(body, ctx.config.max_prompt_bytes);
      await serveCounted(ctx, request, reply, (common) => answerOllama(ctx, { ...common, kind, body, startedAt }));
    });
  }

  api.post("/api/embed", async (request, reply) => {
    const started = performance.now();
    const body = parseRequest(ollamaEmbedSchema, request.body);
    keepAliveOf(body.keep_alive);
    const texts = typeof body.input === "string" ? [body.input] : body.input;
    const result = await counted(ctx, request, body.model, (recorder, model) =>
      embedTexts(ctx, { model, texts, signal: abortOnClose(reply), priority: priorityOf(ctx, request), recorder, runnerHeaders: {} }),
    );
    return {
      model: body.model,
      embeddings: result.embeddings,
      total_duration: Math.round((performance.now() - started) * 1e6),
      load_duration: Math.round(result.loadMs * 1e6),
      prompt_eval_count: result.promptTokens,
    };
  });

  api.post("/api/embeddings", async (request, reply) => {
    const body = parseRequest(ollamaEmbeddingsSchema, request.body);
    keepAliveOf(body.keep_alive);
    const result = await counted(ctx, request, body.model, (recorder, model) =>
      embedTexts(ctx, {
        model,
        texts: [body.prompt],
        signal: abortOnClose(reply),
        priority: priorityOf(ctx, request),
        recorder,
        runnerHeaders: {},
      }),
    );
    return { embedding: result.embeddings[0] ?? [] };
  });

  api.post("/api/pull", (request, reply) => pull(ctx, request, reply));

  api.delete("/api/delete", async (request, reply) => {
    requireAdminKey(ctx.config.admin_key, request);
    const body = parseRequest(ollamaModelNameSchema, request.body);
    const model = await resolveOllamaModel(ctx, (body.model ?? body.name)!);
    await deleteDownloadedModel(ctx, model);
    return reply.code(200).send();
  });
}

/** A model's chat template from its GGUF header, for /api/show of a model that is not loaded. */
async function chatTemplateOf(file: string): Promise<string | null> {
  try {
    const info = await readGgufFileInfo(file, { readTensorInfo: false });
    const template = (info.metadata as { tokenizer?: { chat_template?: unknown } }).tokenizer?.chat_template;
    return typeof template === "string" ? template : null;
  } catch {
    return null;
  }
}

/** Aborted when the client goes away before its answer was written (its queue place and sequence are freed). */
function abortOnClose(reply: FastifyReply): AbortSignal {
  const abort = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  return abort.signal;
}

/** Counts a request in lmx:requests_total the way /v1 does, whether it is answered or refused. */
async function counted<T>(
  ctx: GatewayContext,
  request: FastifyRequest,
  name: string,
  work: (recorder: RequestRecorder, model: Awaited<ReturnType<typeof resolveOllamaModel>>) => Promise<T>,
): Promise<T> {
  const recorder = ctx.metrics.startRequest(performance.now());
  recorder.model = name;
  try {
    const model = await resolveOllamaModel(ctx, name);
    recorder.model = model.id;
    const result = await work(recorder, model);
    recorder.finish(200, "", performance.now());
    return result;
  } catch (error) {
    const lmx = asLmxError(error);
    recorder.finish(lmx.status, lmx.code, performance.now());
    request.log.debug({ code: lmx.code }, "ollama request refused");
    throw lmx;
  }
}

/**
 * `hf.co/org/repo:QUANT`, `org/repo:QUANT` or `org/repo`: our downloader fetches it from the configured hub
 * into the HF cache. Ollama library names (`llama3`) are not hub repos and are refused by name.
 */
function pullSpecOf(name: string): string {
  const spec = name.replace(/^(https?:\/\/)?(hf\.co|huggingface\.co)\//, "");
  if (!/^[\w.-]+\/[\w.-]+(:[\w.-]+)?$/.test(spec)) {
    throw new LmxError(
      "invalid_value",
      `'${name.slice(0, 200)}' is not a Hugging Face repo: pull takes org/repo:QUANT or hf.co/org/repo:QUANT (Ollama's own library is not reached)`,
      { param: "model" },
    );
  }
  return spec.replace(/:latest$/, "");
}

async function pull(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = parseRequest(ollamaModelNameSchema, request.body);
  const spec = pullSpecOf((body.model ?? body.name)!);
  // refusals (unknown repo, no space, no access) come back before any byte: a status and {error}
  const job = await startDownload(ctx, downloadRequestFor(spec));
  const finished = async () => {
    const done = await job.done.catch((e: unknown) => {
      throw asDownloadLmxError(e);
    });
    if (done.status !== "completed") throw new LmxError("download_failed", `the download of '${spec}' ended ${done.status}`);
    await ctx.inventory.refresh();
  };
  if (body.stream === false) {
    await finished();
    return reply.send({ status: "success" });
  }
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { "content-type": NDJSON, "cache-control": "no-cache", "x-request-id": String(request.id) });
  // the download goes on if the client leaves (another pull of the same repo joins it)
  const line = (value: unknown) => raw.writableEnded || raw.destroyed || raw.write(`${JSON.stringify(value)}\n`);
  line({ status: "pulling manifest" });
  const sent = new Map<string, number>();
  const progress = () => {
    for (const file of job.snapshot().files) {
      if (sent.get(file.path) === file.downloaded) continue;
      sent.set(file.path, file.downloaded);
      line({ status: `pulling ${file.path}`, digest: file.path, total: file.size, completed: file.downloaded });
    }
  };
  let settled = false;
  void job.settled.then(() => (settled = true));
  while (!settled) {
    progress();
    await Promise.race([job.settled, new Promise((resolve) => setTimeout(resolve, PULL_POLL_MS))]);
  }
  progress();
  try {
    await finished();
  } catch (error) {
    raw.end(streamedErrorFor("ollama", asLmxError(error)));
    return;
  }
  line({ status: "verifying sha256 digest" });
  line({ status: "writing manifest" });
  raw.end(`${JSON.stringify({ status: "success" })}\n`);
}
