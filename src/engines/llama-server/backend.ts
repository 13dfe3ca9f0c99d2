import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import { RunnerProcess } from "../../runners/supervisor.js";
import type { LlamaServerBinary } from "./binary.js";

const RUNNER_ENTRY = fileURLToPath(new URL("../../runners/runner-main.js", import.meta.url));
export const LLAMA_SERVER_BACKEND = "llama-server";

/**
 * llama.cpp's own server, built on this machine, as the engine of a runner process (the runner supervises it
 * and relays to it). First in the default order where it exists: it batches concurrent sequences in C++.
 * Generation models only; embedding models stay with node-llama-cpp.
 */
export class LlamaServerBackend implements Backend {
  readonly name = LLAMA_SERVER_BACKEND;
  readonly version: string;

  constructor(private readonly binary: LlamaServerBinary) {
    this.version = binary.version;
  }

  canServe(model: ModelDescriptor): boolean {
    return (model.format === "gguf" || model.path.toLowerCase().endsWith(".gguf")) && model.type !== "embedding";
  }

  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const socketPath = path.join(options.socketDir, `r-${randomBytes(4).toString("hex")}.sock`);
    return RunnerProcess.start({
      ...options,
      entry: RUNNER_ENTRY,
      init: {
        type: "init",
        engine: { kind: "llama-server", binary: this.binary.path, version: this.binary.version, gpuOffload: this.binary.devices.length > 0 },
        modelId: model.id,
        modelPath: model.path,
        modelType: model.type,
        settings: model.settings,
        backend: this.name,
        socketPath,
        logLevel: options.logLevel,
      },
    });
  }
}
