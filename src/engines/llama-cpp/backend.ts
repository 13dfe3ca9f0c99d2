import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import { startModelRunner } from "../../supervisor/runner-process.js";
import { BACKEND_NAME } from "./engine.js";

/**
 * node-llama-cpp's exports map does not expose its package.json, so resolve the package's entry point and walk up
 * to the package.json that names it. The version is part of every compatibility key: "unknown" would mean an
 * upgrade never lifts a quarantine.
 */
export function nodeLlamaCppVersion(): string {
  try {
    let dir = path.dirname(createRequire(import.meta.url).resolve("node-llama-cpp"));
    for (let i = 0; i < 6; i++) {
      const file = path.join(dir, "package.json");
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
        if (pkg.name === "node-llama-cpp" && pkg.version) return pkg.version;
      }
      dir = path.dirname(dir);
    }
  } catch {
    // fall through
  }
  return "unknown";
}

/** Both llama.cpp engines open GGUF files (split sets by their first part). */
export function isGguf(model: ModelDescriptor): boolean {
  return model.format === "gguf" || model.path.toLowerCase().endsWith(".gguf");
}

export interface LlamaCppBackendOptions {
  /** Forces CPU whatever the server's gpu setting: the fallback when a GPU backend fails (e.g. a CUDA PTX/driver mismatch). */
  cpuOnly?: boolean;
}

/**
 * llama.cpp through node-llama-cpp, in our own runner process. Opens GGUF files. Two instances make a real
 * fallback chain: "llama.cpp" (GPU offload where present) then "llama.cpp-cpu" (no GPU at all).
 */
export class LlamaCppBackend implements Backend {
  readonly name: string;
  readonly version: string;

  constructor(private readonly options: LlamaCppBackendOptions = {}) {
    this.name = options.cpuOnly ? `${BACKEND_NAME}-cpu` : BACKEND_NAME;
    this.version = `node-llama-cpp ${nodeLlamaCppVersion()}`;
  }

  canServe(model: ModelDescriptor): boolean {
    // this runner has no speculative decoding: a model configured with a draft model needs the llama-server engine
    if (model.settings.draftModel) return false;
    // rpc.workers: only the llama-server engine can spread the layers; loading it whole here would ignore them
    return isGguf(model) && model.settings.rpcWorkers.length === 0;
  }

  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const settings = this.options.cpuOnly ? { ...model.settings, gpu: "cpu" as const, gpuLayers: 0 } : model.settings;
    return startModelRunner(model, this.name, { kind: "node-llama-cpp" }, settings, options);
  }
}
