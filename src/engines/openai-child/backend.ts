/**
 * A Backend for each OpenAI-compatible child server (./recipe.ts): the Python engines found on this machine
 * (./detect.ts) and the operator's own commands (`backends.openai_compatible`). The generic child-server engine
 * supervises them exactly as it does llama-server: estimate and admission first, start with a deadline, health,
 * canary, classified exits; registry, quarantine and fallback key on the backend's name and version.
 */
import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import type { ModelFormat } from "../../inventory/sources/types.js";
import { startModelRunner } from "../../supervisor/runner-process.js";
import type { ChildServerSpec } from "../child-server/recipe.js";
import type { PythonEngine } from "./detect.js";
import type { OpenAiChildFlavor } from "./recipe.js";

export interface OpenAiChildBackendOptions {
  name: string;
  flavor: OpenAiChildFlavor;
  binary: string;
  launcher?: string[];
  command?: string[];
  healthPath?: string;
  version: string;
  formats: readonly ModelFormat[];
  /** vLLM on CUDA: weights and KV cache budgeted on the GPU. */
  gpuOffload: boolean;
}

export class OpenAiChildBackend implements Backend {
  readonly name: string;
  readonly version: string;

  constructor(private readonly options: OpenAiChildBackendOptions) {
    this.name = options.name;
    this.version = options.version;
  }

  canServe(model: ModelDescriptor): boolean {
    // rpc.workers is llama-server's (llama.cpp RPC): these servers would load the model whole
    return (
      model.type !== "embedding" &&
      this.options.formats.includes(model.format) &&
      model.missing.length === 0 &&
      model.settings.rpcWorkers.length === 0
    );
  }

  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const { flavor, binary, launcher, command, healthPath, version, gpuOffload } = this.options;
    const engine: ChildServerSpec = {
      kind: "child-server",
      recipe: flavor,
      binary,
      version,
      gpuOffload,
      ...(launcher ? { launcher } : {}),
      ...(command ? { command } : {}),
      ...(healthPath ? { healthPath } : {}),
    };
    return startModelRunner(model, this.name, engine, model.settings, options);
  }
}

/** The formats each Python engine serves: MLX repos for the MLX servers, Hugging Face safetensors for vLLM. */
export function pythonEngineBackend(engine: PythonEngine): OpenAiChildBackend | null {
  if (!engine.available || !engine.binary) return null;
  return new OpenAiChildBackend({
    name: engine.name,
    flavor: engine.name,
    binary: engine.binary,
    launcher: engine.launcher,
    version: `${engine.name} ${engine.version ?? "unknown"}`,
    formats: engine.name === "vllm" ? ["safetensors"] : ["mlx-safetensors"],
    gpuOffload: engine.name === "vllm",
  });
}

/** `backends.openai_compatible[i]`: the first word of its command is the binary. */
export function commandBackend(entry: { name: string; command: string[]; formats: ModelFormat[]; health_path: string }): OpenAiChildBackend {
  const [binary, ...rest] = entry.command;
  return new OpenAiChildBackend({
    name: entry.name,
    flavor: "openai-compatible",
    binary: binary!,
    command: rest,
    healthPath: entry.health_path,
    version: `command ${entry.command.join(" ")}`.slice(0, 200),
    formats: entry.formats,
    gpuOffload: false,
  });
}
