/**
 * What a safetensors model folder (an MLX repo or a Hugging Face checkpoint) will take in memory, from its own
 * files, before any server reads a weight: the weights are the safetensors files as they are on disk (MLX and
 * most HF checkpoints store them in the dtype they are used in, quantized or not), and the KV cache is
 * 2 (K and V) × layers × KV heads × head size × bytes per element, per token of every sequence.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { LmxError } from "../../errors/codes.js";
import type { MemoryEstimate } from "../../runner/protocol.js";

/** The config.json fields the estimate reads (Llama/Qwen/Mistral-style names; some nest them in text_config). */
export interface ModelShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** The model's training context (max_position_embeddings). */
  trainContext: number;
  /** e.g. { bits: 4, group_size: 64 } from an MLX repo; null when unquantized. */
  quantization: { bits: number; groupSize: number | null } | null;
}

export function readModelShape(config: Record<string, unknown>): ModelShape {
  const text = (typeof config["text_config"] === "object" && config["text_config"] !== null ? config["text_config"] : config) as Record<
    string,
    unknown
  >;
  const num = (key: string): number | null => {
    const value = text[key] ?? config[key];
    return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
  };
  const layers = num("num_hidden_layers") ?? num("n_layers") ?? num("num_layers");
  const heads = num("num_attention_heads") ?? num("n_heads");
  const hidden = num("hidden_size") ?? num("d_model");
  if (layers === null || heads === null || (hidden === null && num("head_dim") === null)) {
    throw new LmxError(
      "model_file_invalid",
      "config.json lacks num_hidden_layers, num_attention_heads or hidden_size: not a transformer this estimate knows",
    );
  }
  const quant = (config["quantization"] ?? config["quantization_config"]) as { bits?: unknown; group_size?: unknown } | undefined;
  return {
    layers,
    kvHeads: num("num_key_value_heads") ?? heads,
    headDim: num("head_dim") ?? Math.floor(hidden! / heads),
    trainContext: num("max_position_embeddings") ?? num("max_seq_len") ?? 0,
    quantization:
      quant && typeof quant.bits === "number"
        ? { bits: quant.bits, groupSize: typeof quant.group_size === "number" ? quant.group_size : null }
        : null,
  };
}

/** Bytes of every *.safetensors file in the folder (links followed, as the HF cache's snapshots are links). */
export function safetensorsBytes(folder: string): number {
  let total = 0;
  for (const name of readdirSync(folder)) if (name.endsWith(".safetensors")) total += statSync(path.join(folder, name)).size;
  if (total === 0) throw new LmxError("model_file_invalid", `${folder} holds no .safetensors files`);
  return total;
}

export function kvCacheBytes(shape: ModelShape, tokens: number, bytesPerElement = 2): number {
  return 2 * shape.layers * shape.kvHeads * shape.headDim * tokens * bytesPerElement;
}

/** Framework and activation overhead beyond weights and KV: a fixed share, at least 256 MiB (a guess, unmeasured). */
const OVERHEAD_SHARE = 0.1;
const OVERHEAD_MIN = 256 * 1024 * 1024;

export interface SafetensorsEstimate {
  estimate: MemoryEstimate;
  trainContextSize: number;
}

/**
 * `where`: "unified" (Apple Silicon: one memory, budgeted as RAM) or "gpu" (vLLM on CUDA: weights and KV on the
 * GPU, only the process overhead in RAM).
 */
export function estimateSafetensors(folder: string, contextSize: number | null, parallel: number, where: "unified" | "gpu"): SafetensorsEstimate {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(path.join(folder, "config.json"), "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new LmxError("model_file_invalid", `cannot read ${path.join(folder, "config.json")}: ${(error as Error).message}`);
  }
  const shape = readModelShape(config);
  const weights = safetensorsBytes(folder);
  const perSequence = contextSize ?? Math.min(shape.trainContext || 4096, 4096);
  const context = kvCacheBytes(shape, perSequence * parallel);
  const overhead = Math.max(OVERHEAD_MIN, Math.round((weights + context) * OVERHEAD_SHARE));
  const estimate: MemoryEstimate =
    where === "unified"
      ? { ram: weights + context + overhead, vram: 0, modelRam: weights, contextRam: context + overhead, modelVram: 0, contextVram: 0 }
      : { ram: overhead, vram: weights + context, modelRam: 0, contextRam: overhead, modelVram: weights, contextVram: context };
  return { estimate, trainContextSize: shape.trainContext };
}
