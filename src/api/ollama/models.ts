/**
 * The inventory and the loaded models in Ollama's shapes (/api/tags, /api/ps, /api/show). Ollama's digest is
 * the hash of its manifest; a model here has none, so `digest` is a stable identity (sha256 of the file's path,
 * size and modification time), not a hash of the weights.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import type { ModelDescriptor } from "../../inventory/types.js";
import type { LoadedModelView } from "../../scheduler/scheduler.js";

export interface OllamaModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

export interface OllamaTag {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
}

/** Far in the future: what Ollama reports for a model kept loaded for good (keep_alive -1). */
const NEVER = "2318-01-01T00:00:00Z";

function modifiedAt(model: ModelDescriptor): Date {
  try {
    return statSync(model.path).mtime;
  } catch {
    return new Date(0);
  }
}

/** 260K, 7.2B: as Ollama writes parameter counts. */
export function parameterSize(count: number | null): string {
  if (count === null || count <= 0) return "";
  const units: Array<[number, string]> = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [scale, unit] of units) if (count >= scale) return `${Number((count / scale).toFixed(count / scale >= 100 ? 0 : 1))}${unit}`;
  return String(count);
}

export function detailsOf(model: ModelDescriptor): OllamaModelDetails {
  const family = model.architecture ?? "";
  return {
    parent_model: "",
    format: model.format,
    family,
    families: family ? [family] : [],
    parameter_size: parameterSize(model.parameterCount),
    quantization_level: model.quantization ?? "",
  };
}

export function digestOf(model: ModelDescriptor): string {
  return createHash("sha256")
    .update(`${model.path}\0${model.sizeBytes}\0${modifiedAt(model).getTime()}`)
    .digest("hex");
}

export function tagOf(model: ModelDescriptor): OllamaTag {
  return {
    name: model.id,
    model: model.id,
    modified_at: modifiedAt(model).toISOString(),
    size: model.sizeBytes,
    digest: digestOf(model),
    details: detailsOf(model),
  };
}

/** A loaded model: its memory as the runner measured it, and when keep_alive will unload it. */
export function runningOf(view: LoadedModelView, model: ModelDescriptor, now = Date.now()) {
  const m = view.memory;
  const vram = m.modelVram + m.contextVram;
  const expires =
    view.keepAliveSec === null || view.pinned ? NEVER : new Date(now + Math.max(0, view.keepAliveSec - view.idleSec) * 1000).toISOString();
  return {
    ...tagOf(model),
    size: m.modelRam + m.modelVram + m.contextRam + m.contextVram,
    size_vram: vram,
    expires_at: expires,
    context_length: view.contextSize,
  };
}

/** /api/show's facts. `template` is the model's Jinja chat template (Ollama's own is a Go template). */
export function showOf(model: ModelDescriptor, template: string | null, contextSize: number | null, thinking: boolean) {
  const arch = model.architecture ?? "unknown";
  const capabilities = model.type === "embedding" ? ["embedding"] : ["completion", "tools", ...(thinking ? ["thinking"] : [])];
  return {
    license: "",
    modelfile: `# served by Opta LMX; nothing here is a Modelfile Ollama could build\nFROM ${model.path}\n`,
    parameters: contextSize === null ? "" : `num_ctx ${contextSize}`,
    template: template ?? "",
    system: "",
    details: detailsOf(model),
    model_info: {
      "general.architecture": arch,
      "general.parameter_count": model.parameterCount ?? 0,
      ...(model.contextLength === null ? {} : { [`${arch}.context_length`]: model.contextLength }),
    },
    capabilities,
    modified_at: modifiedAt(model).toISOString(),
  };
}
