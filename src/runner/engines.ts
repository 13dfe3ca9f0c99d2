/**
 * The engines a runner process can drive, by the `kind` of its init message: a registry instead of an if/else,
 * so a new engine kind is one entry here. Each is imported when chosen, so a runner only pays for its own.
 */
import type { RunnerHttpServer } from "./internal-http.js";
import type { MemoryEstimate, RunnerEngine, RunnerInfo, RunnerInitMessage } from "./protocol.js";

/** A loaded engine as the runner's entry point sees it. */
export interface LoadedEngine {
  info: RunnerInfo;
  /** Serves the gateway's requests on the runner's socket. */
  listen(socketPath: string): Promise<RunnerHttpServer>;
  dispose(): Promise<void>;
  /** Synchronous last resort when the gateway is gone. */
  killNow?(): void;
}

export interface EngineStartArgs {
  init: RunnerInitMessage;
  log: (line: string) => void;
  admit: (estimate: MemoryEstimate) => Promise<void>;
  testTokenDelayMs: number;
}

type EngineLoader = (args: EngineStartArgs) => Promise<LoadedEngine>;

const ENGINES: Record<RunnerEngine["kind"], EngineLoader> = {
  "node-llama-cpp": async ({ init, log, admit, testTokenDelayMs }) => {
    const { LlamaCppEngine } = await import("../engines/llama-cpp/engine.js");
    const { startRunnerHttp } = await import("./llama-cpp-http.js");
    const engine = await LlamaCppEngine.load(init, log, admit, testTokenDelayMs);
    return { info: engine.info, listen: (socketPath) => startRunnerHttp(engine, socketPath), dispose: () => engine.dispose() };
  },
  "child-server": async ({ init, log, admit, testTokenDelayMs }) => {
    const { recipeNamed } = await import("../engines/child-server/recipes.js");
    const { ChildServerEngine } = await import("../engines/child-server/engine.js");
    const { startChildServerRelay } = await import("../engines/child-server/relay.js");
    if (init.engine.kind !== "child-server") throw new Error("not a child-server spec");
    const engine = await ChildServerEngine.start(recipeNamed(init.engine.recipe), init, log, admit, testTokenDelayMs);
    return {
      info: engine.info,
      listen: (socketPath) => startChildServerRelay(engine, socketPath),
      dispose: () => engine.dispose(),
      killNow: () => engine.killNow(),
    };
  },
};

export function startEngine(args: EngineStartArgs): Promise<LoadedEngine> {
  return ENGINES[args.init.engine.kind](args);
}
