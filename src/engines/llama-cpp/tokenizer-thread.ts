/**
 * Tokenizing off the runner's event loop. node-llama-cpp tokenizes synchronously (about a second per megabyte on
 * a small CPU), and the loop that tokenizes is the one that decodes every stream of the runner: a large prompt
 * froze them all. Large texts go to a worker thread with a vocabulary-only copy of the model (same tokens,
 * checked in the tests); it starts on the first large prompt, so runners that never see one pay nothing.
 * Where the worker cannot start, callers tokenize inline as before (null).
 */
import { Worker } from "node:worker_threads";
import type { LlamaGpuType, LlamaText, Token } from "node-llama-cpp";
import type { TokenizeAnswer, TokenizeJob, TokenizerWorkerData } from "./tokenizer-worker.js";

/** Below this, a postMessage round trip costs about what tokenizing inline does (tens of ms at most). */
export const OFF_THREAD_MIN_BYTES = 64 * 1024;
/**
 * The thread costs about 60 MB (an isolate, node-llama-cpp, the vocabulary) beyond runner_overhead_mb's budget:
 * it stops after this long without work, and the next large prompt starts it again (off the loop too).
 */
const IDLE_STOP_MS = 30_000;

export class TokenizerThread {
  private worker: Worker | null = null;
  private started: Promise<boolean> | null = null;
  private nextId = 0;
  private closing = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, { resolve: (tokens: Token[] | null) => void }>();

  constructor(
    private readonly modelPath: string,
    private readonly gpu: LlamaGpuType,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** The tokens of plain text (no special tokens parsed), or null: tokenize inline. */
  tokenizeText(text: string): Promise<Token[] | null> {
    return this.run((id) => ({ id, text }));
  }

  /** The tokens of a rendered chat prompt (text and special tokens), or null: tokenize inline. */
  tokenizeLlamaText(text: LlamaText): Promise<Token[] | null> {
    return this.run((id) => ({ id, llamaText: text.toJSON() }));
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.worker?.terminate();
    this.worker = null;
  }

  private stopWhenIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.pending.size > 0) return this.stopWhenIdle();
      const worker = this.worker;
      // the next large prompt starts a fresh thread
      this.worker = null;
      this.started = null;
      void worker?.terminate();
    }, IDLE_STOP_MS);
    this.idleTimer.unref();
  }

  private async run(job: (id: number) => TokenizeJob): Promise<Token[] | null> {
    if (!(await this.start()) || !this.worker) return null;
    const id = this.nextId++;
    this.stopWhenIdle();
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.worker!.postMessage(job(id));
    });
  }

  private start(): Promise<boolean> {
    this.started ??= new Promise<boolean>((resolve) => {
      const workerData: TokenizerWorkerData = { modelPath: this.modelPath, gpu: this.gpu };
      let worker: Worker;
      try {
        worker = new Worker(new URL("./tokenizer-worker.js", import.meta.url), { workerData });
      } catch (error) {
        this.log(`tokenizer thread unavailable, tokenizing inline: ${(error as Error).message}`);
        resolve(false);
        return;
      }
      // never what keeps a runner alive
      worker.unref();
      worker.on("message", (message: "ready" | { failed: string } | TokenizeAnswer) => {
        if (message === "ready") {
          this.worker = worker;
          resolve(true);
        } else if ("failed" in message) {
          this.log(`tokenizer thread unavailable, tokenizing inline: ${message.failed}`);
          void worker.terminate();
          resolve(false);
        } else {
          const waiter = this.pending.get(message.id);
          this.pending.delete(message.id);
          waiter?.resolve("tokens" in message ? (Array.from(message.tokens) as Token[]) : null);
        }
      });
      const fail = (why: string) => {
        resolve(false);
        // stopped for idleness or closed: a later large prompt starts another thread
        if (this.worker !== worker) return;
        if (!this.closing) this.log(`tokenizer thread ended, tokenizing inline: ${why}`);
        this.worker = null;
        for (const waiter of this.pending.values()) waiter.resolve(null);
        this.pending.clear();
      };
      worker.on("error", (error) => fail(error.message));
      worker.on("exit", (code) => fail(`exit ${code}`));
    });
    return this.started;
  }
}
