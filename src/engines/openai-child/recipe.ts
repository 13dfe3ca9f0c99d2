/**
 * Child-server recipes for servers that speak OpenAI's API: mlx_lm.server and vllm-mlx (Apple Silicon, MLX
 * safetensors repos), vLLM (Linux + CUDA, Hugging Face safetensors), and `openai-compatible`, any such server
 * started by a command line the operator gives (tested by starting llama-server through it).
 *
 * MLX and vLLM recipes are NOT VERIFIED ON REAL HARDWARE: their command lines, health paths and failure texts
 * follow the servers' documentation and source, and are unit-tested as text only (test/unit/openai-child.test.ts).
 * The `openai-compatible` recipe runs end to end in test/integration/openai-child-engine.test.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { LmxError, type ErrorCode } from "../../errors/codes.js";
import { parseRawCompletion } from "../../api/llama/completion.js";
import type { TemplateInfo } from "../../chat/types.js";
import type { RunnerInfo } from "../../runner/protocol.js";
import type { ChildServerRecipe, ChildServerSpec, ChildStartContext } from "../child-server/recipe.js";
import type { Upstream } from "../child-server/upstream.js";
import { estimateSafetensors } from "./model-config.js";
import { toOpenAiCompletion, type DialectOptions } from "./translate.js";

export type OpenAiChildFlavor = "mlx-lm" | "vllm-mlx" | "vllm" | "openai-compatible";

const CONTROL_TIMEOUT_MS = 10_000;
const CANARY_TOKENS = 4;

interface FlavorTraits {
  healthPath: string;
  /** The server's name in messages. */
  server: string;
  grammarField: DialectOptions["grammarField"];
  extendedSampling: boolean;
  /** mlx_lm.server loads whatever `model` names: never send ours. */
  sendsModel: boolean;
  /** Which memory the weights and KV cache take (src/engines/openai-child/model-config.ts). */
  memory: "unified" | "gpu";
}

const TRAITS: Record<OpenAiChildFlavor, FlavorTraits> = {
  "mlx-lm": { healthPath: "/health", server: "mlx_lm.server", grammarField: null, extendedSampling: false, sendsModel: false, memory: "unified" },
  "vllm-mlx": { healthPath: "/health", server: "vllm-mlx", grammarField: null, extendedSampling: false, sendsModel: true, memory: "unified" },
  vllm: { healthPath: "/health", server: "vLLM", grammarField: "guided_grammar", extendedSampling: true, sendsModel: true, memory: "gpu" },
  "openai-compatible": {
    healthPath: "/v1/models",
    server: "the OpenAI-compatible server",
    grammarField: "grammar",
    extendedSampling: true,
    sendsModel: true,
    memory: "unified",
  },
};

export interface OpenAiChildArgsInput {
  flavor: OpenAiChildFlavor;
  spec: Pick<ChildServerSpec, "launcher" | "command">;
  modelPath: string;
  modelId: string;
  host: string;
  port: number;
  contextSize: number;
  parallel: number;
  threads: number;
}

/** The command line after the binary: the launcher (e.g. `-m mlx_lm.server` for python3), then the server's flags. */
export function openAiChildArgs(input: OpenAiChildArgsInput): string[] {
  const launcher = input.spec.launcher ?? [];
  const { modelPath, modelId, host, port, contextSize, parallel } = input;
  switch (input.flavor) {
    case "mlx-lm":
      return [...launcher, "--model", modelPath, "--host", host, "--port", String(port)];
    case "vllm-mlx":
      // one sequence unless asked: its continuous batching is what serves several at once
      return [...launcher, "serve", modelPath, "--host", host, "--port", String(port), ...(parallel > 1 ? ["--continuous-batching"] : [])];
    case "vllm":
      return [
        ...launcher,
        "serve",
        modelPath,
        "--host",
        host,
        "--port",
        String(port),
        "--served-model-name",
        modelId,
        // per sequence, as every engine here counts it; vLLM pages the KV cache across sequences itself
        "--max-model-len",
        String(contextSize),
        "--max-num-seqs",
        String(parallel),
      ];
    case "openai-compatible": {
      const values: Record<string, string> = {
        model: modelPath,
        alias: modelId,
        host,
        port: String(port),
        ctx: String(contextSize),
        ctx_total: String(contextSize * parallel),
        parallel: String(parallel),
        threads: String(input.threads),
      };
      return (input.spec.command ?? []).map((part) =>
        part.replace(/\{(\w+)\}/g, (_whole, name: string) => {
          const value = values[name];
          if (value === undefined)
            throw new LmxError(
              "invalid_value",
              `the command line names {${name}}; known: ${Object.keys(values)
                .map((k) => `{${k}}`)
                .join(" ")}`,
            );
          return value;
        }),
      );
    }
  }
}

/** Failure texts on the servers' output (Python tracebacks, vLLM's and MLX's own messages) → our codes. */
const LOAD_FAILURES: Array<{ pattern: RegExp; code: ErrorCode; why: string }> = [
  {
    pattern:
      /CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError|No available memory for the cache blocks|larger than the maximum number of tokens that can be stored in KV cache|Insufficient Memory|kIOGPUCommandBufferCallbackErrorOutOfMemory/,
    code: "insufficient_memory",
    why: "ran out of (GPU) memory",
  },
  {
    pattern:
      /SafetensorError|Error while deserializing header|HeaderTooLarge|json\.decoder\.JSONDecodeError|Can't load the configuration|does not appear to have a file named|No safetensors|Unrecognized model in|is not a valid model/,
    code: "model_file_invalid",
    why: "cannot read the model's files",
  },
  {
    pattern:
      /ModuleNotFoundError|No module named|ImportError|command not found|RuntimeError: No CUDA GPUs are available|Found no NVIDIA driver|Model architectures? .* (?:are|is) not supported|Model type .* not supported/,
    code: "model_loader_crashed",
    why: "cannot run this model here",
  },
];

export function classifyOpenAiChildExit(
  flavor: OpenAiChildFlavor,
  code: number | null,
  signal: NodeJS.Signals | null,
  tail: readonly string[],
  modelPath: string,
): LmxError {
  const server = TRAITS[flavor].server;
  const text = tail.join("\n");
  const last = tail.slice(-5).join(" | ");
  for (const failure of LOAD_FAILURES) {
    const match = failure.pattern.exec(text);
    if (match) {
      const line = tail.find((l) => failure.pattern.test(l))?.trim() ?? match[0];
      return new LmxError(
        failure.code,
        `${server} ${failure.why} loading ${modelPath}: ${line}`,
        failure.code === "insufficient_memory" ? { retryAfterSec: 30 } : {},
      );
    }
  }
  const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  return new LmxError("model_loader_crashed", `${server} ${how} while loading ${modelPath}: ${last}`);
}

/** An OpenAI-shaped error (`{error:{message}}`, vLLM's `{object:"error",message}`, FastAPI's `{detail}`) → our code. */
export function mapOpenAiChildError(flavor: OpenAiChildFlavor, status: number, json: unknown, text: string): LmxError {
  const body = (json ?? {}) as { error?: { message?: string; type?: string } | string; message?: string; detail?: unknown };
  const message =
    (typeof body.error === "object" ? body.error?.message : typeof body.error === "string" ? body.error : undefined) ??
    body.message ??
    (typeof body.detail === "string" ? body.detail : undefined) ??
    (text.slice(0, 500) || `HTTP ${status}`);
  let code: ErrorCode = "internal_error";
  if (/maximum context length|context length|max_model_len|too long|exceed_context_size/i.test(message) && status < 500)
    code = "context_length_exceeded";
  else if (status === 400 || status === 422) code = "invalid_request";
  else if (status === 501) code = "unsupported_parameter";
  else if (status === 503 || status === 429) code = "runner_busy";
  return new LmxError(code, `${TRAITS[flavor].server}: ${message}`, code === "runner_busy" ? { retryAfterSec: 1 } : {});
}

/** The template facts from the model folder's tokenizer files (what the server itself renders with). */
export function templateFromFolder(folder: string): TemplateInfo | null {
  const file = path.join(folder, "tokenizer_config.json");
  if (!existsSync(file)) return null;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
  const token = (value: unknown): string | null =>
    typeof value === "string"
      ? value
      : typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string"
        ? (value as { content: string }).content
        : null;
  let jinja: string | null = null;
  const template = config["chat_template"];
  if (typeof template === "string") jinja = template;
  else if (Array.isArray(template))
    jinja = (template.find((t: { name?: string }) => t?.name === "default") as { template?: string } | undefined)?.template ?? null;
  const separate = path.join(folder, "chat_template.jinja");
  if (jinja === null && existsSync(separate)) jinja = readFileSync(separate, "utf8");
  return { jinja, bosToken: token(config["bos_token"]), eosToken: token(config["eos_token"]), addsBos: config["add_bos_token"] === true };
}

/** llama-server-compatible servers say the same on `/props`; others answer 404 and the template stays unknown. */
async function templateFromProps(upstream: Upstream): Promise<TemplateInfo | null> {
  const answer = await upstream.call("GET", "/props", undefined, AbortSignal.timeout(CONTROL_TIMEOUT_MS)).catch(() => null);
  if (!answer || answer.status !== 200) return null;
  const props = (answer.json ?? {}) as { chat_template?: string; bos_token?: string; eos_token?: string };
  return { jinja: props.chat_template || null, bosToken: props.bos_token || null, eosToken: props.eos_token || null, addsBos: false };
}

function dialect(flavor: OpenAiChildFlavor, info: RunnerInfo, modelId: string): DialectOptions {
  const traits = TRAITS[flavor];
  return {
    model: traits.sendsModel ? modelId : null,
    grammarField: traits.grammarField,
    extendedSampling: traits.extendedSampling,
    contextSize: info.contextSize,
    serverName: traits.server,
  };
}

/** Our validated OpenAI request as the server reads it: nulls mean "default" and are dropped. */
function passThrough(body: Record<string, unknown>, model: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) if (value !== null && value !== undefined) out[key] = value;
  if (model === null) delete out["model"];
  else out["model"] = model;
  return out;
}

export function openAiChildRecipe(flavor: OpenAiChildFlavor): ChildServerRecipe {
  const traits = TRAITS[flavor];
  return {
    name: flavor,
    listen: "tcp",
    healthPath: traits.healthPath,
    translatesRaw: true,

    async estimate(init) {
      // a GGUF through the generic recipe: the file's size is what the gateway budgets without an estimate
      if (!existsSync(path.join(init.modelPath, "config.json"))) return null;
      return estimateSafetensors(init.modelPath, init.settings.contextSize, init.settings.parallel, traits.memory);
    },

    args({ init, spec, address, contextSize }: ChildStartContext) {
      if (!("port" in address)) throw new Error(`${flavor} listens on a loopback port`);
      return openAiChildArgs({
        flavor,
        spec,
        modelPath: init.modelPath,
        modelId: init.modelId,
        host: address.host,
        port: address.port,
        contextSize,
        parallel: init.settings.parallel,
        threads: init.settings.threads,
      });
    },

    async canary(upstream) {
      const started = performance.now();
      const fail = (why: string) => new LmxError("model_probe_failed", `the model loaded but failed its canary generation: ${why}`);
      const body: Record<string, unknown> = { prompt: "Hello", max_tokens: CANARY_TOKENS, temperature: 0, logprobs: 1, stream: false };
      const res = await upstream.call("POST", "/v1/completions", body, AbortSignal.timeout(CONTROL_TIMEOUT_MS * 6));
      if (res.status !== 200) throw fail(`${traits.server} answered ${res.status}: ${res.text.slice(0, 300)}`);
      const answer = (res.json ?? {}) as {
        choices?: Array<{ text?: string; logprobs?: { token_logprobs?: Array<number | null> } | null }>;
        usage?: { completion_tokens?: number };
      };
      const choice = answer.choices?.[0];
      const logprobs = choice?.logprobs?.token_logprobs ?? [];
      const tokens = answer.usage?.completion_tokens ?? logprobs.length;
      if (tokens === 0 && !choice?.text) throw fail("no tokens were generated");
      // the first token's logprob may be null by OpenAI's own convention for echoed prompts; generated ones are numbers
      for (const value of logprobs)
        if (value !== null && !Number.isFinite(value)) throw fail("it produces non-finite logits (NaN or infinite weights?)");
      const ms = performance.now() - started;
      return { tokens, ms: Math.round(ms), tokensPerSec: Math.round((tokens * 1000) / Math.max(ms, 0.001)) };
    },

    async describe(upstream, { init, contextSize }) {
      const template = templateFromFolder(init.modelPath) ??
        (await templateFromProps(upstream)) ?? { jinja: null, bosToken: null, eosToken: null, addsBos: false };
      return { parallel: init.settings.parallel, contextSize, chatTemplate: template.jinja ? `jinja (${traits.server})` : null, template };
    },

    classifyLoadExit: (code, signal, tail, modelPath) => classifyOpenAiChildExit(flavor, code, signal, tail, modelPath),

    prepare(url, body, _upstream, info) {
      const options = dialect(flavor, info, String(info.details?.["modelId"] ?? body["model"] ?? ""));
      if (url === "/v1/embeddings")
        throw new LmxError("model_not_embedding", `this model is loaded for generation (${traits.server}), not embeddings`, { param: "model" });
      if (url === "/completion")
        return { path: "/v1/completions", body: toOpenAiCompletion(parseRawCompletion(body), options), check: null, translate: "completion" };
      if (url === "/v1/chat/completions" || url === "/v1/completions") return { path: url, body: passThrough(body, options.model), check: null };
      if (url === "/tokenize") {
        if (flavor === "openai-compatible") return { path: url, body, check: null };
        if (flavor === "vllm")
          return {
            path: url,
            body: { model: options.model, prompt: body["content"], add_special_tokens: body["add_special"] === true },
            check: null,
          };
        throw new LmxError("unsupported_parameter", `${traits.server} cannot count tokens`, { param: "model" });
      }
      throw new LmxError("not_found", `no runner route POST ${url}`);
    },

    mapError: (status, json, text) => mapOpenAiChildError(flavor, status, json, text),

    async stats(_upstream, counters, info) {
      // these servers' own counters (vLLM's Prometheus page) are not read yet: what the relay saw is what there is
      return {
        requestsServed: counters.requestsServed,
        requestsActive: counters.requestsActive,
        decodeCalls: 0,
        promptTokensEvaluated: 0,
        promptTokensCached: 0,
        generatedTokens: 0,
        slotsBusy: Math.min(counters.requestsActive, info.parallel),
        slotsTotal: info.parallel,
        requestsWaiting: Math.max(0, counters.requestsActive - info.parallel),
      };
    },
  };
}
