/**
 * A backend with no processes, for unit tests of the scheduler (as Ollama's sched_test.go fakes its
 * LlamaServer): loads take as long as the test says, estimate what the test says, fail or crash on command.
 */
import type { Dispatcher } from "undici";
import type { Backend, RunnerExit, RunnerHandle, StartOptions } from "../../src/engines/backend.js";
import { LmxError, type ErrorCode } from "../../src/errors/codes.js";
import type { ModelDescriptor } from "../../src/inventory/types.js";
import type { ResolvedRunnerSettings, RunnerInfo, RunnerStats } from "../../src/runner/protocol.js";

export const MiB = 1024 * 1024;

export function fakeModel(id: string, over: Partial<ModelDescriptor> = {}, settings: Partial<ResolvedRunnerSettings> = {}): ModelDescriptor {
  return {
    id,
    aliases: [],
    path: `/models/${id}.gguf`,
    type: "chat",
    source: "model_dir",
    sizeBytes: 10 * MiB,
    settings: {
      contextSize: 512,
      parallel: 1,
      threads: 1,
      batchSize: 512,
      gpuLayers: 0,
      flashAttention: "auto",
      gpu: "cpu",
      draftModel: null,
      draftMax: null,
      threadsBatch: null,
      ubatchSize: null,
      cacheTypeK: "f16",
      cacheTypeV: "f16",
      promptCacheMb: 0,
      rpcWorkers: [],
      ...settings,
    },
    keepAliveMs: null,
    pinned: false,
    loaderTimeoutMs: null,
    format: "gguf",
    localPath: `/models/${id}.gguf`,
    architecture: "llama",
    parameterCount: null,
    quantization: "Q8_0",
    contextLength: 512,
    missing: [],
    problem: null,
    ...over,
  };
}

export class FakeRunner implements RunnerHandle {
  readonly startedAt = Date.now();
  readonly dispatcher = {} as Dispatcher;
  readonly direct = null;
  exit: RunnerExit | null = null;
  readonly exited: Promise<RunnerExit>;
  private resolveExit!: (exit: RunnerExit) => void;
  stopCalls = 0;

  constructor(
    readonly pid: number,
    readonly info: RunnerInfo,
    private readonly stopDelayMs: number,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  async stats(): Promise<RunnerStats | null> {
    return null;
  }

  async stop(): Promise<void> {
    this.stopCalls++;
    if (this.exit) return;
    await new Promise((r) => setTimeout(r, this.stopDelayMs));
    this.end({ code: 0, signal: null, reason: "stopped", stderrTail: [] });
    await this.exited;
  }

  crash(): void {
    this.end({ code: null, signal: "SIGKILL", reason: new LmxError("model_crashed", "killed by the test"), stderrTail: [] });
  }

  private end(exit: RunnerExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.resolveExit(exit);
  }
}

export interface FakeBehaviour {
  loadMs?: number;
  stopMs?: number;
  /** RAM the runner estimates for itself (bytes). */
  estimateBytes?: number;
  /** GPU memory the runner estimates for itself (bytes; 0 by default). */
  estimateVramBytes?: number;
  /** Fail the load with this code instead of starting. */
  failWith?: ErrorCode;
}

export class FakeBackend implements Backend {
  readonly version = "1.0";
  readonly runners: FakeRunner[] = [];
  /** Starts that are under way now and the most at once. */
  starting = 0;
  maxStarting = 0;
  starts = 0;
  private pids = 1000;

  constructor(
    readonly name: string,
    private readonly behaviour: (model: ModelDescriptor) => FakeBehaviour = () => ({}),
  ) {}

  canServe(model: ModelDescriptor): boolean {
    return model.format === "gguf";
  }

  async start(model: ModelDescriptor, options: StartOptions): Promise<RunnerHandle> {
    const b = this.behaviour(model);
    this.starts++;
    this.starting++;
    this.maxStarting = Math.max(this.maxStarting, this.starting);
    try {
      const ram = b.estimateBytes ?? model.sizeBytes;
      const vram = b.estimateVramBytes ?? 0;
      await options.admit?.({ ram, vram, modelRam: ram, contextRam: 0, modelVram: vram, contextVram: 0 });
      await new Promise((r) => setTimeout(r, b.loadMs ?? 5));
      if (b.failWith) throw new LmxError(b.failWith, `${this.name} failed on purpose`);
      const s = model.settings;
      const runner = new FakeRunner(
        this.pids++,
        {
          pid: this.pids,
          backend: this.name,
          backendVersion: this.version,
          gpu: false,
          contextSize: s.contextSize ?? 512,
          trainContextSize: 512,
          parallel: s.parallel,
          threads: s.threads,
          batchSize: s.batchSize,
          gpuLayers: 0,
          chatWrapper: null,
          template: { jinja: null, bosToken: null, eosToken: null, addsBos: false },
          embeddingSize: null,
          canary: { tokens: 1, ms: 1, tokensPerSec: 1000 },
          memory: { modelRam: ram, modelVram: vram, contextRam: 0, contextVram: 0 },
          estimate: { ram, vram, modelRam: ram, contextRam: 0, modelVram: vram, contextVram: 0 },
          loadMs: b.loadMs ?? 5,
        },
        b.stopMs ?? 5,
      );
      this.runners.push(runner);
      return runner;
    } finally {
      this.starting--;
    }
  }
}
