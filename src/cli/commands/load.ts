/** `lmx load` and `lmx unload` (POST /admin/models/load and /unload). */
import { InvalidArgumentError, type Command } from "commander";
import type { LoadAnswer } from "../api-types.js";
import { clientFor, positiveInt, printJson, run, withConnection, type Io } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { formatBytes } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface LoadOptions extends ConnectionOptions {
  ctx?: number;
  parallel?: number;
  threads?: number | "auto";
  batch?: number;
  gpuLayers?: number | "auto" | "max";
  flashAttention?: boolean | "auto";
  preset?: string;
  cacheType?: string;
  autoDownload?: boolean;
  json?: boolean;
}

interface UnloadOptions extends ConnectionOptions {
  json?: boolean;
}

function threadsValue(value: string): number | "auto" {
  if (value === "auto") return "auto";
  return positiveInt(value);
}

function gpuLayersValue(value: string): number | "auto" | "max" {
  if (value === "auto" || value === "max") return value;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected auto, max or a number of layers ≥ 0");
  return n;
}

function flashAttentionValue(value: string): boolean | "auto" {
  if (value === "auto") return "auto";
  if (["on", "true", "1"].includes(value)) return true;
  if (["off", "false", "0"].includes(value)) return false;
  throw new InvalidArgumentError("expected auto, on or off");
}

/** The server's `settings` object: only what was given, so everything else stays as configured. */
export function settingsFrom(options: LoadOptions): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  if (options.ctx !== undefined) settings["context_size"] = options.ctx;
  if (options.parallel !== undefined) settings["parallel"] = options.parallel;
  if (options.threads !== undefined) settings["threads"] = options.threads;
  if (options.batch !== undefined) settings["batch_size"] = options.batch;
  if (options.gpuLayers !== undefined) settings["gpu_layers"] = options.gpuLayers;
  if (options.flashAttention !== undefined) settings["flash_attention"] = options.flashAttention;
  if (options.cacheType !== undefined) {
    settings["cache_type_k"] = options.cacheType;
    settings["cache_type_v"] = options.cacheType;
  }
  return settings;
}

async function load(model: string, options: LoadOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const settings = settingsFrom(options);
  const body = {
    model_id: model,
    ...(Object.keys(settings).length > 0 ? { settings } : {}),
    ...(options.autoDownload ? { auto_download: true } : {}),
    ...(options.preset ? { preset: options.preset } : {}),
  };
  // a load may download, estimate and start a runner: bounded by the server's own loader_timeout_sec, not here
  const { status, body: answer } = await client.post<LoadAnswer>("/admin/models/load", "admin", body, { timeoutMs: null, accept: [202] });
  if (options.json) printJson(io, answer);
  if (status === 202 || answer.status === "download_required") {
    io.err(`lmx: ${answer.model_id} is not complete on disk; missing: ${(answer.missing ?? []).join(", ") || "?"}\n`);
    io.err(`  fix: \`lmx pull ${answer.model_id}\`, or \`lmx load ${answer.model_id} --auto-download\`\n`);
    return EXIT.failed;
  }
  if (!options.json) {
    const info = answer.info ?? {};
    const memory = info.memory ? info.memory.model_ram + info.memory.model_vram + info.memory.context_ram + info.memory.context_vram : null;
    const where = info.gpu ? `${info.backend} (${info.gpu})` : `${info.backend ?? "?"} (cpu)`;
    io.out(`${io.style.green("loaded")} ${answer.model_id} on ${where}${answer.reloaded ? " — replaced the runner that had other settings" : ""}\n`);
    io.out(
      `  context ${info.context_size ?? "?"} × ${info.parallel ?? "?"} sequences · ${info.threads ?? "?"} threads · batch ${info.batch_size ?? "?"} · gpu layers ${info.gpu_layers ?? 0} · ${formatBytes(memory)} allocated · pid ${answer.pid ?? "?"}` +
        `${info.load_ms !== undefined ? ` · ${(info.load_ms / 1000).toFixed(1)} s` : ""}\n`,
    );
  }
  return EXIT.ok;
}

async function unload(model: string, options: UnloadOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const { body } = await client.post<{ status: string; model_id: string }>("/admin/models/unload", "admin", { model_id: model }, { timeoutMs: null });
  if (options.json) printJson(io, body);
  else io.out(body.status === "unloaded" ? `unloaded ${body.model_id}\n` : `${body.model_id} was not loaded\n`);
  return EXIT.ok;
}

export function registerLoadCommands(program: Command): void {
  withConnection(
    program
      .command("load")
      .argument("<model>", "model id or alias (see `lmx models`)")
      .description("load a model (replacing its runner when the settings differ)"),
  )
    .option("--ctx <tokens>", "context size per sequence", positiveInt)
    .option("--parallel <n>", "sequences decoded together (requests served at once)", positiveInt)
    .option("--threads <n>", "CPU threads, or auto (the real core count)", threadsValue)
    .option("--batch <n>", "batch size", positiveInt)
    .option("--gpu-layers <n>", "layers to offload: auto, max or a number", gpuLayersValue)
    .option("--flash-attention <mode>", "auto, on or off", flashAttentionValue)
    .option("--preset <name>", "a preset (GET /admin/presets: fast-chat, long-context, batch, low-memory, or the config's own)")
    .option("--cache-type <type>", "KV-cache type for keys and values: f16, q8_0 or q4_0 (llama-server engine)")
    .option("--auto-download", "fetch missing files from the hub first")
    .option("--json", "print the server's answer as JSON")
    .action((model: string, options: LoadOptions) => run((io) => load(model, options, io)));

  withConnection(program.command("unload").argument("<model>", "model id or alias").description("drain and stop a model's runner"))
    .option("--json", "print the server's answer as JSON")
    .action((model: string, options: UnloadOptions) => run((io) => unload(model, options, io)));
}
