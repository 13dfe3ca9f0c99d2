import type { Backend, RunnerHandle, StartOptions } from "../backend.js";
import type { ModelDescriptor } from "../../inventory/types.js";
import { startModelRunner } from "../../supervisor/runner-process.js";
import { isGguf } from "../llama-cpp/backend.js";
import type { LlamaServerBinary } from "./binary.js";
import type { ChildServerSpec } from "../child-server/recipe.js";
import { llamaServerRecipe } from "./recipe.js";
import { checkRpcWorkers } from "./rpc.js";
import { LmxError } from "../../errors/codes.js";

export const LLAMA_SERVER_BACKEND = "llama-server";

/**
 * llama.cpp's own server, built on this machine, as a child server of a runner process (the runner supervises
 * it and relays to it; the recipe is ./recipe.ts). First in the default order where it exists: it batches concurrent sequences in C++.
 * Generation models only; embedding models stay with node-llama-cpp.
 */
export class LlamaServerBackend implements Backend {
  readonly name = LLAMA_SERVER_BACKEND;
  readonly version: string;
  /** RPC worker → the model whose layers it holds (loading or loaded). */
  private readonly workersInUse = new Map<string, string>();

  /** `rpcBinary`: the llama-server built with GGML_RPC, for models with rpc.workers (./rpc.ts); null: none here. */
  constructor(
    private readonly binary: LlamaServerBinary,
    private readonly rpcBinary: LlamaServerBinary | null = null,
  ) {
    this.version = binary.version;
  }

  canServe(model: ModelDescriptor): boolean {
    return isGguf(model) && model.type !== "embedding";
  }

  async start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const workers = model.settings.rpcWorkers;
    let binary = this.binary;
    if (workers.length > 0) {
      if (!this.rpcBinary) {
        throw new LmxError(
          "backend_unavailable",
          `'${model.id}' names rpc.workers, but no llama-server built with RPC is here; build one with: lmx engines build rpc-server`,
        );
      }
      // an rpc-server serves one client at a time: a second llama-server would wait in its handshake until the
      // loader timeout, so a worker already holding another model refuses at once
      const busy = workers.filter((w) => this.workersInUse.has(w) && this.workersInUse.get(w) !== model.id);
      if (busy.length > 0) {
        throw new LmxError(
          "rpc_worker_unavailable",
          `'${model.id}' cannot load: RPC worker ${busy.map((w) => `${w} holds '${this.workersInUse.get(w)}'`).join(", ")} (an rpc-server serves one model at a time); unload that model or give this one other workers`,
          { retryAfterSec: 5 },
        );
      }
      // before any runner starts: llama-server aborts on an unreachable worker without saying which
      await checkRpcWorkers(model.id, workers);
      binary = this.rpcBinary;
    }
    for (const worker of workers) this.workersInUse.set(worker, model.id);
    const release = () => {
      for (const worker of workers) if (this.workersInUse.get(worker) === model.id) this.workersInUse.delete(worker);
    };
    const engine: ChildServerSpec = {
      kind: "child-server",
      recipe: llamaServerRecipe.name,
      binary: binary.path,
      version: binary.version,
      gpuOffload: binary.devices.length > 0,
    };
    try {
      const handle = await startModelRunner(model, this.name, engine, model.settings, options);
      void handle.exited.then(release);
      return handle;
    } catch (error) {
      release();
      throw error;
    }
  }
}
