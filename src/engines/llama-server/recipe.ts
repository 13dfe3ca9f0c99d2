/**
 * llama.cpp's own llama-server as a child-server recipe: it listens on a private Unix socket, batches sequences
 * in C++ (where the node-llama-cpp runner loses under concurrency, docs/benchmarks.md), and speaks the OpenAI
 * wire format. What we promise and llama-server does not is enforced in `prepare`: a prompt plus max_tokens
 * that does not fit is refused (llama-server would cut the answer short).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LmxError, type ErrorCode } from "../../errors/codes.js";
import type { ChatCompletionRequest, CompletionRequest } from "../../api/openai/schemas.js";
import { messageText } from "../../api/openai/messages.js";
import { parseRawCompletion, type RawCompletionBody } from "../../api/llama/completion.js";
import type { TemplateInfo } from "../../chat/types.js";
import type { MemoryEstimate, ResolvedRunnerSettings, RunnerInfo, RunnerInitMessage } from "../../runner/protocol.js";
import type { KvCacheType } from "../../config/runner-settings.js";
import type { ChildServerRecipe, ChildServerSpec } from "../child-server/recipe.js";
import type { Upstream } from "../child-server/upstream.js";
import { llamaServerArgs } from "./args.js";
import { parsePrometheus } from "./prometheus.js";
import { rpcFailureLine, rpcWorkerLost } from "./rpc.js";

const ESTIMATE_ENTRY = fileURLToPath(new URL("../llama-cpp/estimate-main.js", import.meta.url));
const CONTROL_TIMEOUT_MS = 10_000;
const CANARY_TOKENS = 4;
/** A token decodes to at least one byte, plus BOS/EOS: bytes + this bounds the token count from above. */
const SPECIAL_TOKEN_ALLOWANCE = 4;

export const llamaServerRecipe: ChildServerRecipe = {
  name: "llama-server",
  listen: "unix",
  healthPath: "/health",

  async estimate(init, spec) {
    return adjustEstimate(await runEstimate(init, spec), init.settings);
  },

  args({ init, address, contextSize }) {
    if (!("socketPath" in address)) throw new Error("llama-server listens on a Unix socket here");
    return llamaServerArgs({ modelPath: init.modelPath, alias: init.modelId, socketPath: address.socketPath, settings: init.settings, contextSize });
  },

  canary: runCanary,

  async describe(upstream, { init, contextSize }) {
    const props = (await upstream.call("GET", "/props", undefined, AbortSignal.timeout(CONTROL_TIMEOUT_MS))).json as Props;
    return {
      parallel: props.total_slots ?? init.settings.parallel,
      contextSize: props.default_generation_settings?.n_ctx ?? contextSize,
      chatTemplate: props.chat_template ? "jinja (llama-server)" : null,
      template: await templateInfo(upstream, props),
    };
  },

  classifyLoadExit(code, signal, tail, modelPath) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const text = tail.join("\n");
    const last = tail.slice(-5).join(" | ");
    const rpcLine = rpcFailureLine(tail);
    if (rpcLine) return rpcWorkerLost(modelPath, rpcWorkersOf(tail), rpcLine, true);
    if (
      !signal &&
      /failed to load model|invalid magic|gguf_init|failed to read|unknown model architecture|tensor .* data is not within/i.test(text)
    ) {
      return new LmxError("model_file_invalid", `llama-server cannot load ${modelPath}: ${last}`);
    }
    return new LmxError("model_loader_crashed", `llama-server ${how} while loading ${modelPath}: ${last}`);
  },

  prepare(url, body, upstream, info, signal) {
    if (url === "/v1/embeddings") {
      throw new LmxError("model_not_embedding", "this model is loaded for generation (llama-server engine), not embeddings", { param: "model" });
    }
    let prepared: Record<string, unknown>;
    if (url === "/v1/chat/completions") prepared = chatBody(body as unknown as ChatCompletionRequest);
    else if (url === "/v1/completions") prepared = completionBody(body as unknown as CompletionRequest);
    else if (url === "/completion") prepared = rawBody(parseRawCompletion(body));
    else if (url === "/tokenize") prepared = tokenizeBody(body);
    else throw new LmxError("not_found", `no runner route POST ${url}`);
    const check = checkContext(upstream, info, url, prepared, signal);
    // nobody may await a check whose request failed first: it must not become an unhandled rejection
    check?.catch(() => {});
    return { path: url, body: prepared, check };
  },

  mapError: upstreamError,

  async stats(upstream, counters, info) {
    const metrics = parsePrometheus((await upstream.call("GET", "/metrics", undefined, AbortSignal.timeout(CONTROL_TIMEOUT_MS))).text);
    return {
      requestsServed: counters.requestsServed,
      requestsActive: counters.requestsActive,
      decodeCalls: metrics.get("llamacpp:n_decode_total") ?? 0,
      promptTokensEvaluated: metrics.get("llamacpp:prompt_tokens_total") ?? 0,
      promptTokensCached: metrics.get("llamacpp:prompt_tokens_cached_total") ?? 0,
      generatedTokens: metrics.get("llamacpp:tokens_predicted_total") ?? 0,
      slotsBusy: metrics.get("llamacpp:requests_processing") ?? 0,
      slotsTotal: info.parallel,
      requestsWaiting: metrics.get("llamacpp:requests_deferred") ?? 0,
    };
  },
};

interface Props {
  total_slots?: number;
  chat_template?: string;
  bos_token?: string;
  eos_token?: string;
  default_generation_settings?: { n_ctx?: number };
}

/** Our validated request as llama-server reads it: same OpenAI names; nulls mean "default" and are dropped. */
function commonFields(request: ChatCompletionRequest | CompletionRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const copy = [
    "model",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "stream",
    "stream_options",
    "ignore_eos",
  ] as const;
  for (const key of copy) {
    const value = request[key];
    if (value !== null && value !== undefined) out[key] = value;
  }
  return out;
}

function chatBody(request: ChatCompletionRequest): Record<string, unknown> {
  const out = commonFields(request);
  // templates know system/user/assistant; "developer" is OpenAI's newer name for system
  out["messages"] = request.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: messageText(m.content),
  }));
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  if (maxTokens !== null && maxTokens !== undefined) out["max_tokens"] = maxTokens;
  return out;
}

function completionBody(request: CompletionRequest): Record<string, unknown> {
  const out = commonFields(request);
  const prompt = typeof request.prompt === "string" ? request.prompt : (request.prompt[0] ?? "");
  if (prompt.length === 0) throw new LmxError("invalid_value", "prompt must not be empty", { param: "prompt" });
  out["prompt"] = prompt;
  if (request.max_tokens !== null && request.max_tokens !== undefined) out["max_tokens"] = request.max_tokens;
  return out;
}

/**
 * `/completion` is llama-server's own dialect: the validated fields go through as they are. The prompt cache is
 * always on (reuse of the rendered conversation's prefix is the point of a raw prompt); special tokens named in
 * `preserved_tokens` come back as their text (llama-server renders other special tokens as nothing).
 */
function rawBody(request: RawCompletionBody): Record<string, unknown> {
  const out: Record<string, unknown> = { ...request, cache_prompt: true };
  if (request.grammar === "") delete out["grammar"];
  if (request.preserved_tokens.length === 0) delete out["preserved_tokens"];
  return out;
}

/** `/tokenize` (token counting): only the fields that choose how the text is tokenized go through. */
function tokenizeBody(body: Record<string, unknown>): Record<string, unknown> {
  if (typeof body["content"] !== "string") throw new LmxError("invalid_value", "/tokenize needs 'content' as a string", { param: "content" });
  return { content: body["content"], add_special: body["add_special"] === true, parse_special: body["parse_special"] !== false };
}

/**
 * The template facts as llama-server applies them: its template, BOS and EOS text from /props, and whether its
 * tokenizer adds BOS (tokenizing "a" with special tokens added: the first piece is then the BOS text).
 */
async function templateInfo(upstream: Upstream, props: Props): Promise<TemplateInfo> {
  const bosToken = props.bos_token || null;
  let addsBos = false;
  if (bosToken !== null) {
    const answer = await upstream.call(
      "POST",
      "/tokenize",
      { content: "a", add_special: true, parse_special: false, with_pieces: true },
      AbortSignal.timeout(CONTROL_TIMEOUT_MS),
    );
    const first = (answer.json as { tokens?: Array<{ piece?: unknown }> } | null)?.tokens?.[0];
    addsBos = answer.status === 200 && first?.piece === bosToken;
  }
  return { jinja: props.chat_template || null, bosToken, eosToken: props.eos_token || null, addsBos };
}

/**
 * Refuses a prompt plus max_tokens beyond the per-request context, as the node-llama-cpp engine does, with the
 * same message. Without max_tokens, llama-server's own check (prompt ≥ context) is the whole rule. The prompt is
 * only tokenized when its byte length cannot already prove it fits.
 */
function checkContext(upstream: Upstream, info: RunnerInfo, url: string, body: Record<string, unknown>, signal: AbortSignal): Promise<void> | null {
  const limit = url === "/completion" ? body["n_predict"] : body["max_tokens"];
  const maxTokens = typeof limit === "number" && limit > 0 ? limit : null;
  if (maxTokens === null) return null;
  const contextSize = info.contextSize;
  // a completion prompt whose bytes prove it fits needs no call at all
  if (url !== "/v1/chat/completions" && Buffer.byteLength(String(body["prompt"])) + SPECIAL_TOKEN_ALLOWANCE + maxTokens <= contextSize) return null;
  return countAndRefuse(upstream, contextSize, maxTokens, url, body, signal);
}

async function countAndRefuse(
  upstream: Upstream,
  contextSize: number,
  maxTokens: number,
  url: string,
  body: Record<string, unknown>,
  signal: AbortSignal,
): Promise<void> {
  let text: string;
  if (url === "/v1/chat/completions") {
    const rendered = await control(upstream, "/apply-template", { messages: body["messages"] }, signal);
    text = String((rendered as { prompt?: unknown }).prompt ?? "");
  } else {
    text = String(body["prompt"]);
  }
  if (Buffer.byteLength(text) + SPECIAL_TOKEN_ALLOWANCE + maxTokens <= contextSize) return;
  const tokenized = await control(upstream, "/tokenize", { content: text, add_special: true, parse_special: true }, signal);
  const promptTokens = ((tokenized as { tokens?: unknown[] }).tokens ?? []).length;
  const param = url === "/v1/chat/completions" ? "messages" : "prompt";
  if (promptTokens >= contextSize) {
    throw new LmxError(
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens per request, but the prompt has ${promptTokens} tokens; shorten it or load the model with a larger context_size`,
      { param },
    );
  }
  const room = contextSize - promptTokens;
  if (maxTokens > room) {
    throw new LmxError(
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens per request; the prompt has ${promptTokens} tokens and max_tokens asks for ${maxTokens} more (at most ${room} fit)`,
      { param: "max_tokens" },
    );
  }
}

async function control(upstream: Upstream, path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
  const answer = await upstream.call("POST", path, body, AbortSignal.any([signal, AbortSignal.timeout(CONTROL_TIMEOUT_MS * 3)]));
  if (answer.status !== 200) throw upstreamError(answer.status, answer.json, answer.text);
  return answer.json;
}

/** llama-server's `{"error":{"code":400,"type":"exceed_context_size_error",...}}` → one of our codes. */
function upstreamError(status: number, parsed: unknown, text: string): LmxError {
  const error = (parsed as { error?: { type?: string; message?: string } } | null)?.error;
  const message = error?.message ?? (text.slice(0, 500) || `llama-server answered HTTP ${status}`);
  let code: ErrorCode = "internal_error";
  if (error?.type === "exceed_context_size_error") code = "context_length_exceeded";
  else if (status === 400 || error?.type === "invalid_request_error") code = "invalid_request";
  else if (status === 501 || error?.type === "not_supported_error") code = "unsupported_parameter";
  else if (status === 503) code = "runner_busy";
  return new LmxError(code, `llama-server: ${message}`, code === "runner_busy" ? { retryAfterSec: 1 } : {});
}

/**
 * A few greedy tokens with their probabilities before the runner says ready. NaN/inf weights load fine and then
 * sample garbage: their probabilities come back non-finite (JSON null), and such a load fails here.
 */
async function runCanary(upstream: Upstream): Promise<RunnerInfo["canary"]> {
  const started = performance.now();
  const fail = (why: string) => new LmxError("model_probe_failed", `the model loaded but failed its canary generation: ${why}`);
  const res = await upstream.call(
    "POST",
    "/completion",
    { prompt: "Hello", n_predict: CANARY_TOKENS, temperature: 0, n_probs: 1, cache_prompt: false },
    AbortSignal.timeout(CONTROL_TIMEOUT_MS * 6),
  );
  if (res.status !== 200) throw fail(`llama-server answered ${res.status}: ${res.text.slice(0, 300)}`);
  const body = (res.json ?? {}) as { tokens_predicted?: number; completion_probabilities?: Array<{ logprob?: number | null; prob?: number | null }> };
  const probs = body.completion_probabilities ?? [];
  if (probs.length === 0) throw fail("no tokens were generated");
  for (const p of probs) {
    const value = p.logprob ?? p.prob;
    if (typeof value !== "number" || !Number.isFinite(value)) throw fail("it produces non-finite logits (NaN or infinite weights?)");
  }
  const ms = performance.now() - started;
  const tokens = body.tokens_predicted ?? probs.length;
  return { tokens, ms: Math.round(ms), tokensPerSec: Math.round((tokens * 1000) / Math.max(ms, 0.001)) };
}

/** Bits per element of llama.cpp's KV-cache types (q8_0 and q4_0 blocks carry a 16-bit scale per 32 values). */
const KV_BITS: Record<KvCacheType, number> = { f16: 16, q8_0: 8.5, q4_0: 4.5 };

/**
 * node-llama-cpp estimates an f16 KV cache and no prompt cache: a quantized cache holds the context in a share of
 * that (applied to the whole context estimate, compute buffers included, so a little under the truth for those),
 * and the prompt cache (--cache-ram) comes on top, in RAM.
 */
export function adjustEstimate<T extends { estimate: MemoryEstimate }>(
  estimated: T,
  settings: Pick<ResolvedRunnerSettings, "cacheTypeK" | "cacheTypeV" | "promptCacheMb">,
): T {
  const factor = (KV_BITS[settings.cacheTypeK] + KV_BITS[settings.cacheTypeV]) / 32;
  const promptCache = settings.promptCacheMb * 1024 * 1024;
  const e = estimated.estimate;
  const contextRam = Math.round(e.contextRam * factor);
  const contextVram = Math.round(e.contextVram * factor);
  const estimate: MemoryEstimate = {
    ...e,
    contextRam: contextRam + promptCache,
    contextVram,
    ram: e.ram - e.contextRam + contextRam + promptCache,
    vram: e.vram - e.contextVram + contextVram,
  };
  return { ...estimated, estimate };
}

/** The endpoints llama.cpp names in its RPC failure lines ("Failed to connect to 10.0.0.2:50052"). */
function rpcWorkersOf(tail: readonly string[]): string[] {
  const found = new Set<string>();
  for (const line of tail) for (const m of line.matchAll(/(?:connect to|failed for|RPC\d*\[)\s*(\[?[\w.:-]+\]?:\d+)/g)) found.add(m[1]!);
  return found.size > 0 ? [...found] : ["see rpc.workers"];
}

/** The estimate from a short-lived node-llama-cpp process (see estimate-main.ts for why not in the runner). */
function runEstimate(init: RunnerInitMessage, spec: ChildServerSpec): Promise<{ estimate: MemoryEstimate; trainContextSize: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [ESTIMATE_ENTRY, JSON.stringify({ init, gpuOffload: spec.gpuOffload })],
      { maxBuffer: 1024 * 1024 },
      (error, stdout) => {
        const line = stdout.trim().split("\n").pop() ?? "";
        let answer: { ok: boolean; estimate?: MemoryEstimate; trainContextSize?: number; code?: string; message?: string } | null = null;
        try {
          answer = JSON.parse(line);
        } catch {
          // handled below
        }
        if (answer?.ok && answer.estimate) return resolve({ estimate: answer.estimate, trainContextSize: answer.trainContextSize ?? 0 });
        if (answer && !answer.ok)
          return reject(new LmxError((answer.code ?? "model_loader_crashed") as ErrorCode, answer.message ?? "estimate failed"));
        reject(new LmxError("model_loader_crashed", `the memory estimate process failed: ${error?.message ?? line}`));
      },
    );
  });
}
