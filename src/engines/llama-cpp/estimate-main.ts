/**
 * A short-lived process that answers one question: what will loading this model take? It runs llama.cpp's own
 * estimators (node-llama-cpp's GgufInsights) for runners that do not load node-llama-cpp themselves — the
 * llama-server engine — so their long-lived process does not carry ~50 MB of binding for one calculation.
 * Input: a RunnerInitMessage and gpuOffload as JSON in argv[2]. Output: one JSON line on stdout.
 */
import { getLlama, LlamaLogLevel, NoBinaryFoundError, type Llama } from "node-llama-cpp";
import { LmxError } from "../../errors/codes.js";
import type { RunnerInitMessage } from "../../runner/protocol.js";
import { estimateMemory } from "./engine.js";

export interface EstimateRequest {
  init: RunnerInitMessage;
  gpuOffload: boolean;
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? "{}") as EstimateRequest;
  try {
    // the CPU binding is enough: the estimators are arithmetic over the GGUF header and the planned context
    let llama: Llama;
    try {
      llama = await getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.error });
    } catch (error) {
      // an install with only a local source build (no prebuilt CPU binary) still has that build
      if (!(error instanceof NoBinaryFoundError)) throw error;
      llama = await getLlama("lastBuild", { maxThreads: 1, logLevel: LlamaLogLevel.error });
    }
    const result = await estimateMemory(llama, request.init, request.gpuOffload);
    const draftPath = request.init.settings.draftModel;
    if (draftPath) {
      // the draft model gets its own weights and a context as large as the model's: both count
      const draft = await estimateMemory(llama, { ...request.init, modelPath: draftPath }, request.gpuOffload);
      for (const key of ["ram", "vram", "modelRam", "contextRam", "modelVram", "contextVram"] as const) result.estimate[key] += draft.estimate[key];
    }
    process.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
  } catch (error) {
    // node-llama-cpp's bad-magic error quotes the file's first bytes: never pass those on
    const message = (error as Error)?.message ?? String(error);
    const lmx =
      error instanceof LmxError ? error : new LmxError("model_loader_crashed", /GGUF magic/i.test(message) ? "not a GGUF file (bad magic)" : message);
    process.stdout.write(`${JSON.stringify({ ok: false, code: lmx.code, message: lmx.message })}\n`);
  }
  process.exit(0);
}

void main();
