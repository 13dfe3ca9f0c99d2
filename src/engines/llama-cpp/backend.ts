import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import { RunnerProcess } from "../../runners/supervisor.js";
import { BACKEND_NAME } from "./engine.js";

const RUNNER_ENTRY = fileURLToPath(new URL("../../runners/runner-main.js", import.meta.url));

/** llama.cpp through node-llama-cpp, in our own runner process. Opens GGUF files. */
export class LlamaCppBackend implements Backend {
  readonly name = BACKEND_NAME;

  canServe(model: ModelDescriptor): boolean {
    return model.path.toLowerCase().endsWith(".gguf");
  }

  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    // Unix socket paths are limited to ~104 bytes, so sockets live in a short per-gateway folder.
    const socketPath = path.join(options.socketDir, `r-${randomBytes(4).toString("hex")}.sock`);
    return RunnerProcess.start({
      ...options,
      entry: RUNNER_ENTRY,
      init: {
        type: "init",
        modelId: model.id,
        modelPath: model.path,
        modelType: model.type,
        settings: model.settings,
        socketPath,
        logLevel: options.logLevel,
      },
    });
  }
}
