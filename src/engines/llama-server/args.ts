/**
 * The llama-server command line for a runner's settings. Every flag that changes what a request gets or what
 * memory is used is set explicitly, so a llama.cpp upgrade that changes a default cannot change our behaviour:
 * - `--ctx-size` is the total over all slots: llama-server splits it evenly (`--no-kv-unified`), which gives
 *   each sequence exactly `context_size` tokens, as the node-llama-cpp engine does;
 * - `--no-context-shift`: a full context ends the answer with finish_reason "length", never silently drops
 *   earlier tokens;
 * - `--cache-ram`: the prompt cache outside the KV cache, prompt_cache_mb (default 0, none; llama-server's own default
 *   is 8 GiB, unbudgeted); the estimate adds what is set here;
 * - `--cache-type-k/-v`: the KV-cache element types (f16 unless a setting or a tuned profile says otherwise);
 * - `--fit off`: llama.cpp must not shrink the context or move layers behind the gateway's estimate;
 * - `--rpc` (rpc.workers, an RPC build only): the layers live on llama.cpp rpc-server workers (./rpc.ts).
 */
import type { ResolvedRunnerSettings } from "../../runner/protocol.js";

export interface LlamaServerArgsInput {
  modelPath: string;
  /** The id responses carry in their `model` field. */
  alias: string;
  socketPath: string;
  settings: ResolvedRunnerSettings;
  /** Tokens per sequence. */
  contextSize: number;
}

export function llamaServerArgs({ modelPath, alias, socketPath, settings, contextSize }: LlamaServerArgsInput): string[] {
  const args = [
    "--model",
    modelPath,
    "--alias",
    alias,
    "--host",
    socketPath,
    "--ctx-size",
    String(contextSize * settings.parallel),
    "--parallel",
    String(settings.parallel),
    "--no-kv-unified",
    "--threads",
    String(settings.threads),
    "--threads-batch",
    String(settings.threadsBatch ?? settings.threads),
    "--batch-size",
    String(settings.batchSize),
    "--ubatch-size",
    String(Math.min(settings.ubatchSize ?? settings.batchSize, settings.batchSize)),
    "--cache-type-k",
    settings.cacheTypeK,
    "--cache-type-v",
    settings.cacheTypeV,
    "--flash-attn",
    settings.flashAttention === "auto" ? "auto" : settings.flashAttention ? "on" : "off",
    "--no-context-shift",
    "--cache-ram",
    String(settings.promptCacheMb),
    "--fit",
    "off",
    "--metrics",
    "--no-webui",
  ];
  if (settings.rpcWorkers.length > 0) {
    // the workers are the model's devices: every layer goes to them (split by their free memory) unless a count
    // is given; "--device none" would drop them too, so gpu: cpu keeps only this machine's GPUs out by omission
    args.push("--rpc", settings.rpcWorkers.join(","), "--gpu-layers", typeof settings.gpuLayers === "number" ? String(settings.gpuLayers) : "all");
  } else if (settings.gpu === "cpu") args.push("--gpu-layers", "0", "--device", "none");
  else if (settings.gpuLayers === "max") args.push("--gpu-layers", "all");
  else if (typeof settings.gpuLayers === "number") args.push("--gpu-layers", String(settings.gpuLayers));
  if (settings.draftModel) {
    // llama-server loads a draft model but drafts with it only for --spec-type draft-simple
    args.push("--model-draft", settings.draftModel, "--spec-type", "draft-simple", "--threads-draft", String(settings.threads));
    if (settings.draftMax !== null) args.push("--spec-draft-n-max", String(settings.draftMax));
    if (settings.gpu === "cpu") args.push("--gpu-layers-draft", "0", "--device-draft", "none");
  }
  return args;
}
