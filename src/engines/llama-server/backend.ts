import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import { startModelRunner } from "../../supervisor/runner-process.js";
import { isGguf } from "../llama-cpp/backend.js";
import type { LlamaServerBinary } from "./binary.js";
import type { ChildServerSpec } from "../child-server/recipe.js";
import { llamaServerRecipe } from "./recipe.js";

export const LLAMA_SERVER_BACKEND = "llama-server";

/**
 * llama.cpp's own server, built on this machine, as a child server of a runner process (the runner supervises
 * it and relays to it; the recipe is ./recipe.ts). First in the default order where it exists: it batches concurrent sequences in C++.
 * Generation models only; embedding models stay with node-llama-cpp.
 */
export class LlamaServerBackend implements Backend {
  readonly name = LLAMA_SERVER_BACKEND;
  readonly version: string;

  constructor(private readonly binary: LlamaServerBinary) {
    this.version = binary.version;
  }

  canServe(model: ModelDescriptor): boolean {
    return isGguf(model) && model.type !== "embedding";
  }

  start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const engine: ChildServerSpec = {
      kind: "child-server",
      recipe: llamaServerRecipe.name,
      binary: this.binary.path,
      version: this.binary.version,
      gpuOffload: this.binary.devices.length > 0,
    };
    return startModelRunner(model, this.name, engine, model.settings, options);
  }
}
