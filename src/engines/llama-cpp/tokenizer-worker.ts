/**
 * Worker thread of a runner that tokenizes large prompts (see tokenizer-thread.ts): its own vocabulary-only copy
 * of the model (no weights, no context), so the runner's event loop keeps decoding while it works.
 */
import { parentPort, workerData } from "node:worker_threads";
import { getLlama, LlamaLogLevel, LlamaText, type Llama, type LlamaGpuType, type LlamaTextJSON } from "node-llama-cpp";

export interface TokenizerWorkerData {
  modelPath: string;
  /** The runner's own: the same native binary, already loaded in this process. */
  gpu: LlamaGpuType;
}

export type TokenizeJob = { id: number; text: string } | { id: number; llamaText: LlamaTextJSON };
export type TokenizeAnswer = { id: number; tokens: Uint32Array } | { id: number; error: string };

const { modelPath, gpu } = workerData as TokenizerWorkerData;
const port = parentPort!;
try {
  let llama: Llama;
  try {
    llama = await getLlama({ gpu, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.error });
  } catch {
    // the runner itself fell back to the last source build (engine.ts): so does its tokenizer
    llama = await getLlama("lastBuild", { maxThreads: 1, logLevel: LlamaLogLevel.error });
  }
  const model = await llama.loadModel({ modelPath, vocabOnly: true, gpuLayers: 0 });
  port.on("message", (job: TokenizeJob) => {
    try {
      const tokens = "text" in job ? model.tokenize(job.text, false) : LlamaText.fromJSON(job.llamaText).tokenize(model.tokenizer);
      const array = Uint32Array.from(tokens as readonly number[]);
      port.postMessage({ id: job.id, tokens: array } satisfies TokenizeAnswer, [array.buffer]);
    } catch (error) {
      port.postMessage({ id: job.id, error: (error as Error).message } satisfies TokenizeAnswer);
    }
  });
  port.postMessage("ready");
} catch (error) {
  port.postMessage({ failed: (error as Error).message });
}
