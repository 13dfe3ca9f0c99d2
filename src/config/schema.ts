import { z } from "zod";
import { skillsConfigSchema } from "../skills/config.js";
import { nodesConfigSchema } from "../nodes/config.js";
import { agentsConfigSchema } from "../agents/config.js";
import { defaultBackendOrder } from "./backend-order.js";

const positiveInt = z.number().int().positive();
const threadsSetting = z.union([z.literal("auto"), positiveInt]);
const gpuLayersSetting = z.union([z.literal("auto"), z.literal("max"), z.number().int().min(0)]);
export const kvCacheType = z.enum(["f16", "q8_0", "q4_0"]);
/** "host:port" of a llama.cpp rpc-server; an IPv6 host in brackets ("[fd00::2]:50052"). */
const rpcEndpoint = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'an RPC worker is "host:port" (an IPv6 host in brackets)')
  .refine((value) => {
    const port = Number(value.slice(value.lastIndexOf(":") + 1));
    return port >= 1 && port <= 65535;
  }, "an RPC worker's port is 1-65535");
export const gpuSetting = z.enum(["auto", "cuda", "metal", "vulkan", "cpu"]);

/** Settings that shape a runner; each model may override the server-wide defaults. */
export const runnerSettingsSchema = z.strictObject({
  /** Tokens per sequence; null = the model's training context, capped at 4096. */
  context_size: positiveInt.nullable().optional(),
  /** Sequences decoded together in one batch: the number of requests a runner serves at once. */
  parallel: positiveInt.max(256).optional(),
  threads: threadsSetting.optional(),
  batch_size: positiveInt.optional(),
  gpu_layers: gpuLayersSetting.optional(),
  /** "auto" turns it on where model and backend support it (less memory: 8.9 vs 43.8 MB context on stories260K). */
  flash_attention: z.union([z.literal("auto"), z.boolean()]).optional(),
  /**
   * Speculative decoding (llama-server engine): a small GGUF of the same family (same vocabulary) drafts tokens
   * the model verifies in one batch. null turns it off.
   */
  draft_model: z.string().min(1).nullable().optional(),
  /** Tokens drafted per step (llama-server's default: 3). */
  draft_max: positiveInt.max(64).optional(),
  /** Threads for prompt processing (llama-server engine); "auto": the same as threads. */
  threads_batch: threadsSetting.optional(),
  /** Physical batch (llama-server engine); "auto": the same as batch_size. */
  ubatch_size: z.union([z.literal("auto"), positiveInt]).optional(),
  /**
   * KV-cache element type for keys and values (llama-server engine): q8_0 halves and q4_0 quarters the cache of
   * f16, so the same memory holds more slots or longer contexts. A quantized V cache needs flash attention.
   */
  cache_type_k: kvCacheType.optional(),
  cache_type_v: kvCacheType.optional(),
  /**
   * Prompt cache outside the KV cache (llama-server's --cache-ram), in MiB: 0 (the default) keeps none, so all
   * memory is what the gateway budgets; more lets returning conversations skip their prefix after a slot moved on.
   */
  prompt_cache_mb: z.number().int().min(0).max(1_048_576).optional(),
  /**
   * One model across machines (llama-server engine built with `lmx engines build rpc-server`): its layers go to
   * these llama.cpp `rpc-server` workers. The RPC protocol is unauthenticated: private networks only
   * (docs/scale-out.md). An empty list turns it off where defaults set it.
   */
  rpc: z.strictObject({ workers: z.array(rpcEndpoint) }).optional(),
});
export type RunnerSettingsInput = z.infer<typeof runnerSettingsSchema>;

/**
 * How long an idle model stays loaded: seconds, a duration ("90s", "5m", "2h"), or "never" (-1) to keep it
 * until it is unloaded or evicted. 0 unloads as soon as the last request ends.
 */
export const keepAliveSchema = z.union([
  z.number().int().min(-1),
  z.string().regex(/^(never|\d+(\.\d+)?(ms|s|m|h))$/, 'keep_alive takes seconds, "never", or a duration like "90s", "5m", "2h"'),
]);

export function keepAliveMs(value: z.infer<typeof keepAliveSchema>): number | null {
  if (value === "never" || value === -1) return null;
  if (typeof value === "number") return value * 1000;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!match) return null;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * factor;
}

export const modelTypeSchema = z.enum(["chat", "completion", "embedding"]);
export type ModelType = z.infer<typeof modelTypeSchema>;

const modelIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$/, "model ids use letters, digits and . _ : @ / + - and start with a letter or digit")
  .refine((id) => !id.split("/").includes(".."), "model ids may not contain '..' segments");

export const modelEntrySchema = runnerSettingsSchema.extend({
  id: modelIdSchema,
  path: z.string().min(1),
  type: modelTypeSchema.optional(),
  aliases: z.array(modelIdSchema).optional(),
  keep_alive: keepAliveSchema.optional(),
  /** Never evicted to make room and never unloaded by keep_alive. */
  pinned: z.boolean().optional(),
  /** This model's load deadline, overriding the server-wide loader_timeout_sec (large models need longer). */
  loader_timeout_sec: z.number().positive().optional(),
  /** A named preset (built-in or from `presets:`) under this entry's own settings (docs/autotune.md). */
  preset: z.string().min(1).optional(),
});
export type ModelEntryInput = z.infer<typeof modelEntrySchema>;

const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export const configSchema = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(1234),
  /** Where the server keeps its own files: the generated demo model, runner sockets, later its database. */
  state_dir: z.string().min(1).optional(),
  model_dirs: z.array(z.string().min(1)).default([]),
  /** Other tools' model stores to list and serve from: "auto" finds the usual place, false skips, or a path. */
  discovery: z
    .strictObject({
      hf_cache: z.union([z.literal("auto"), z.literal(false), z.string().min(1)]).default("auto"),
      lmstudio: z.union([z.literal("auto"), z.literal(false), z.string().min(1)]).default("auto"),
      ollama: z.union([z.literal("auto"), z.literal(false), z.string().min(1)]).default("auto"),
    })
    .default({ hf_cache: "auto", lmstudio: "auto", ollama: "auto" }),
  models: z.array(modelEntrySchema).default([]),
  defaults: runnerSettingsSchema.default({}),
  /**
   * Named runner settings, assignable per model (`preset:` in its entry) or per load; these add to or replace
   * the built-ins fast-chat, long-context, batch and low-memory (docs/autotune.md).
   */
  presets: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "preset names use a-z 0-9 . _ -"), runnerSettingsSchema).default({}),
  /** Autotune (docs/autotune.md): apply a tuned profile found for a model at its next load. */
  autotune: z
    .strictObject({
      /** Use the current tuned profile of a model at load (below explicit load settings, above presets). */
      apply_profiles: z.boolean().default(true),
      /** The longest search the admin API accepts, in seconds. */
      max_budget_sec: z.number().positive().default(3600),
    })
    .prefault({}),
  gpu: gpuSetting.default("auto"),
  auto_load: z.array(z.string().min(1)).default([]),
  /** Load a model on the first request that names it. */
  jit_load: z.boolean().default(true),
  /** Serve a generated tiny random-weight model when no other model is found, so a fresh install answers. */
  demo_model: z.boolean().default(true),
  downloads: z
    .strictObject({
      /** The hub to fetch from (HF_ENDPOINT): huggingface.co, a mirror, or a local server in tests. */
      hub_url: z.string().url().default("https://huggingface.co"),
      /** Access token for gated or private repos (HF_TOKEN). */
      token: z.string().min(1).nullable().default(null),
      /** Where downloads go: the HF cache layout, so other tools see them. Default: the discovered HF cache. */
      cache_dir: z.string().min(1).nullable().default(null),
      /** A download that would leave less than this free on the cache volume is refused with 507. */
      min_free_bytes: z
        .number()
        .int()
        .min(0)
        .default(1024 * 1024 * 1024),
    })
    .default({ hub_url: "https://huggingface.co", token: null, cache_dir: null, min_free_bytes: 1024 * 1024 * 1024 }),
  /** Consecutive failed loads of one model/backend/version/runtime before loads are refused fast. */
  quarantine_after: positiveInt.default(3),
  backends: z
    .strictObject({
      /** Preference order; a failed load falls through to the next backend that can open the model. */
      order: z.array(z.string().min(1)).default(() => defaultBackendOrder()),
      /**
       * llama.cpp's own server as a runner engine: "auto" uses $LMX_LLAMA_SERVER, else a build under
       * <state_dir>/engines/llama-server, else the machine's one build in ~/.cache/opta-lmx/llama-server (what
       * `lmx engines build` and `npm test` make); a path names a binary; false never uses it.
       */
      llama_server: z.union([z.literal("auto"), z.literal(false), z.string().min(1)]).default("auto"),
      /**
       * The llama-server built with GGML_RPC (`lmx engines build rpc-server`), used for models with rpc.workers:
       * "auto" looks in ~/.cache/opta-lmx/llama-rpc, a path names the binary, false never uses RPC.
       */
      llama_server_rpc: z.union([z.literal("auto"), z.literal(false), z.string().min(1)]).default("auto"),
      /**
       * mlx_lm.server, vllm-mlx and vLLM as engines where they are installed and the platform fits (Apple Silicon
       * for MLX, Linux + CUDA for vLLM): "auto" looks for them at start; false never. Not verified on real hardware.
       */
      python_engines: z.union([z.literal("auto"), z.literal(false)]).default("auto"),
      /**
       * Any OpenAI-compatible server as an engine, started per model by this command line ({model} {alias} {host}
       * {port} {ctx} {ctx_total} {parallel} {threads} are filled in); it serves the formats listed.
       */
      openai_compatible: z
        .array(
          z.strictObject({
            name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "a backend name: lowercase letters, digits, . _ -"),
            command: z.array(z.string().min(1)).min(1),
            formats: z.array(z.enum(["gguf", "mlx-safetensors", "safetensors"])).min(1),
            /** Answers 200 once the model is loaded. */
            health_path: z.string().startsWith("/").default("/v1/models"),
          }),
        )
        .default([]),
      /** Add a CPU-only llama.cpp after the GPU one: "auto" where a GPU backend exists here. */
      cpu_fallback: z.union([z.literal("auto"), z.boolean()]).default("auto"),
      /** Try combinations that failed or are quarantined anyway. */
      allow_unsupported_runtime: z.boolean().default(false),
      /**
       * Requests to a child server (llama-server) go straight from the gateway to its socket, the runner process
       * supervising only: "direct" (one Node.js hop per token). "runner" relays through the runner process as
       * before 0.2 (one more hop; kept for comparison, docs/benchmarks.md).
       */
      child_path: z.enum(["direct", "runner"]).default("direct"),
    })
    .default({
      order: defaultBackendOrder(),
      llama_server: "auto",
      llama_server_rpc: "auto",
      python_engines: "auto",
      openai_compatible: [],
      cpu_fallback: "auto",
      allow_unsupported_runtime: false,
      child_path: "direct",
    }),
  /** Serve a local GGUF of the same model when an MLX/safetensors repo has no backend here. */
  gguf_fallback_enabled: z.boolean().default(false),
  /** Ollama's API under /api/* (src/http/routes/ollama.ts). */
  ollama: z
    .strictObject({
      /**
       * options.num_ctx larger than the loaded context reloads the model with that context (never a silent
       * truncation); false answers 400 instead.
       */
      allow_context_reload: z.boolean().default(true),
      /** A second listener on this port serving the same app (Ollama's is 11434); null: none. */
      port: z.number().int().min(0).max(65535).nullable().default(null),
    })
    .default({ allow_context_reload: true, port: null }),
  /** Time a client has to send a whole request (slow or stalled uploads are cut). */
  request_timeout_sec: z.number().positive().default(30),
  /**
   * Time a client may leave an answer unread once the socket buffers are full; then the answer is cut and the
   * model sequence it held is freed (a client that stops reading must not hold a sequence until it disconnects).
   */
  stream_write_timeout_sec: z.number().positive().default(30),
  max_concurrent_requests: positiveInt.default(64),
  /** Default idle time before a model is unloaded; "never" keeps models until evicted or unloaded. */
  keep_alive: keepAliveSchema.default("never"),
  /** Loaded models at most; loading one more evicts the least recently used idle model. */
  max_loaded_models: positiveInt.nullable().default(null),
  /**
   * When memory holds fewer models than are asked for: a load that does not fit because other models are busy
   * waits for them (they finish what runs, take nothing new, and are swapped out), so requests are served in
   * groups per model instead of thrashing or answering 507. Off: 507 at once.
   */
  affinity: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** The longest a load waits for busy models before 507. */
      max_wait_sec: z.number().positive().default(120),
      /**
       * A model just loaded serves at least this long before it is asked to make room: every swap costs a load and
       * the prompt cache, so swaps are spaced (8 s: 8 clients alternating between two models swap ≤ 1/4 as often as
       * without affinity; docs/benchmarks.md).
       */
      min_resident_sec: z.number().min(0).default(8),
    })
    .prefault({}),
  /**
   * Runner processes starting at once, across models. Loads are disk- and CPU-bound, and a runner that has not
   * estimated its memory yet holds only what its file proves: a burst of loads must not start a crowd of them.
   */
  max_concurrent_loads: positiveInt.default(2),
  memory: z
    .strictObject({
      /** Share of total RAM that loaded models may use, estimates of loads in progress included. */
      max_percent: z.number().gt(0).max(100).default(90),
      /** An absolute budget instead of max_percent (containers, tests). */
      budget_bytes: positiveInt.nullable().default(null),
      /** What a runner process costs besides model and context (Node, llama.cpp binaries): measured ~115 MB RSS. */
      runner_overhead_mb: z.number().min(0).default(120),
      /** Evict idle, unpinned models (least recently used first) to make room; false answers 507 instead. */
      eviction: z.boolean().default(true),
      /** Share of each GPU's total memory (nvidia-smi) that loaded models may use; ignored where no GPU is seen. */
      gpu_max_percent: z.number().gt(0).max(100).default(90),
      /** An absolute budget per GPU instead of gpu_max_percent. */
      gpu_budget_bytes: positiveInt.nullable().default(null),
      /**
       * What a GPU runner holds on the device besides the estimate (CUDA context, cuBLAS workspace, llama.cpp's
       * memory pool): nvidia-smi showed 3,578 MiB per llama-server for the 1.1B F16 at 32 × 1024 on an H200 after a
       * benchmark, of which the estimate covers 3,106.
       */
      gpu_runner_overhead_mb: z.number().min(0).default(450),
    })
    .default({
      max_percent: 90,
      budget_bytes: null,
      runner_overhead_mb: 120,
      eviction: true,
      gpu_max_percent: 90,
      gpu_budget_bytes: null,
      gpu_runner_overhead_mb: 450,
    }),
  /** Requests that may wait for a free sequence, across all models; past that → 429. */
  queue_size: z.number().int().min(0).default(256),
  queue_timeout_sec: z.number().positive().default(300),
  /**
   * Priority classes (x-priority: interactive | normal | batch): interactive requests are admitted before waiting
   * normal and batch ones; a waiting request climbs one class per aging_sec, so batch never starves.
   */
  priority: z
    .strictObject({
      /** The class of a request that names none (and whose API key has none below). */
      default: z.enum(["interactive", "normal", "batch"]).default("normal"),
      /** A class per API key (a bot fleet's key → batch). */
      by_api_key: z.record(z.string().min(8), z.enum(["interactive", "normal", "batch"])).default({}),
      aging_sec: z.number().min(0).default(10),
      /** Waiting requests allowed per class (429 past it), besides queue_size in total; null: no own limit. */
      queue_size: z
        .strictObject({
          interactive: z.number().int().min(0).nullable().default(null),
          normal: z.number().int().min(0).nullable().default(null),
          batch: z.number().int().min(0).nullable().default(null),
        })
        .prefault({}),
      /** Sequences added to every runner that only interactive requests may use. */
      interactive_slots: z.number().int().min(0).max(16).default(0),
    })
    .prefault({}),
  loader_timeout_sec: z.number().positive().default(120),
  health_interval_sec: z.number().positive().default(5),
  shutdown_timeout_sec: z.number().positive().default(30),
  max_body_bytes: positiveInt.default(16 * 1024 * 1024),
  /**
   * Text one request may ask a runner to tokenize (messages, prompt, input); larger → 413. Tokenizing is about a
   * second per megabyte on a small CPU and stalls the runner's other streams; 2 MiB is ~500K tokens of English.
   */
  max_prompt_bytes: positiveInt.default(2 * 1024 * 1024),
  admin_key: z.string().min(8, "admin_key must be at least 8 characters").nullable().default(null),
  /** When non-empty, /v1/* needs `Authorization: Bearer <one of these>` (what OpenAI clients send as apiKey). */
  api_keys: z.array(z.string().min(8, "api keys must be at least 8 characters")).default([]),
  /**
   * Host names (besides loopback, IP addresses and the bind host) that requests may be addressed to; any other
   * Host header is refused as DNS rebinding. ".example.com" also allows its subdomains; "*" turns the check off.
   */
  allowed_hosts: z.array(z.string().min(1)).default([]),
  /**
   * Web origins (scheme://host:port) whose pages may call the API from a browser: they get CORS headers and may
   * POST. Others get no CORS headers and their state-changing requests are refused. "*" allows every page.
   */
  cors_origins: z
    .array(
      z
        .string()
        .min(1)
        .refine(
          (o) => o === "*" || /^https?:\/\/[^/]+$/.test(o),
          "cors_origins are origins like http://localhost:3000 (scheme, host, port; no path), or *",
        ),
    )
    .default([]),
  log_level: logLevel.default("info"),
  log_file: z.string().min(1).nullable().default(null),
  /** The log file rolls over at this size (k, m or g); rolled files beyond log_keep are deleted. */
  log_rotate_size: z
    .string()
    .regex(/^\d+(\.\d+)?[kmg]$/i, 'log_rotate_size is a size like "50m", "512k" or "1g"')
    .default("50m"),
  log_keep: z.number().int().min(1).default(5),
  /** Skills the server runs itself: built-ins, command skills, Agent Skills folders, MCP servers (docs/skills.md). */
  skills: skillsConfigSchema,
  /** Other LMX servers and OpenAI-compatible endpoints requests may be routed to (docs/scale-out.md). */
  nodes: nodesConfigSchema,
  /** Agent runs: roles beyond the built-ins, the auto model's fallback, retention (docs/agents.md). */
  agents: agentsConfigSchema,
});

export type ConfigInput = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
