/**
 * Embeddings as JSON for a dialect that reshapes them (/api/embed, /api/embeddings): the same runner endpoint
 * as /v1/embeddings, read whole instead of relayed byte for byte.
 */
import { LmxError, fromOpenAiBody } from "../errors/codes.js";
import type { ModelDescriptor } from "../inventory/types.js";
import type { RequestRecorder } from "../metrics/request.js";
import type { Priority } from "../scheduler/priority.js";
import { RUNNER_REQUEST_ID_HEADER } from "../runner/protocol.js";
import type { ServingContext } from "./context.js";
import { GENERATION_ENDPOINTS } from "./generate.js";
import { crashError } from "./relay.js";

export interface EmbedInput {
  model: ModelDescriptor;
  texts: string[];
  signal: AbortSignal;
  priority: Priority;
  recorder: RequestRecorder | null;
  runnerHeaders: Record<string, string>;
}

export interface EmbedResult {
  embeddings: number[][];
  promptTokens: number;
  /** Whether this request loaded the model, and how long that took. */
  loadMs: number;
}

interface RunnerEmbeddings {
  data: Array<{ index: number; embedding: number[] }>;
  usage?: { prompt_tokens?: number };
}

export async function embedTexts(ctx: ServingContext, input: EmbedInput): Promise<EmbedResult> {
  const { model, signal } = input;
  if (ctx.state.shuttingDown) throw new LmxError("server_shutting_down", "the server is shutting down", { retryAfterSec: 5 });
  const refusal = ctx.scheduler.unservableReason(model) ?? GENERATION_ENDPOINTS["/v1/embeddings"].accepts(model);
  if (refusal) throw refusal;
  const wasLoaded = ctx.scheduler.runnerFor(model.id) !== null;
  const waitStart = performance.now();
  const lease = await ctx.scheduler.acquire(model, signal, input.priority);
  input.recorder?.queued(performance.now() - waitStart);
  try {
    const runner = lease.runner;
    let upstream;
    try {
      upstream = await runner.dispatcher.request({
        path: "/v1/embeddings",
        method: "POST",
        headers: { ...input.runnerHeaders, "content-type": "application/json", [RUNNER_REQUEST_ID_HEADER]: "ollama-embed" },
        body: JSON.stringify({ model: model.id, input: input.texts, encoding_format: "float" }),
        signal,
      });
    } catch (error) {
      throw await crashError(runner, error);
    }
    const text = await upstream.body.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    if (upstream.statusCode !== 200)
      throw fromOpenAiBody(json, "internal_error", `runner answered HTTP ${upstream.statusCode}: ${text.slice(0, 300)}`);
    const answer = json as RunnerEmbeddings | null;
    if (!answer || !Array.isArray(answer.data)) throw new LmxError("internal_error", "the runner's embeddings answer is unreadable");
    const embeddings = [...answer.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    const promptTokens = answer.usage?.prompt_tokens ?? 0;
    input.recorder?.usage({ promptTokens, cachedTokens: 0, completionTokens: 0 });
    return { embeddings, promptTokens, loadMs: wasLoaded ? 0 : runner.info.loadMs };
  } finally {
    lease.release();
  }
}
