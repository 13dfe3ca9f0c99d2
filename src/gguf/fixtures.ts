/**
 * Model files for tests and first-run demos: a tiny working model plus files
 * that are broken in the specific ways loaders must survive.
 */
import { copyFile, stat, truncate, writeFile } from "node:fs/promises";
import { LLAMA_SHAPES, writeLlamaModel, type LlamaWeightType } from "./llama-model.js";

export interface TinyLlamaOptions {
  /** Adds the ChatML template and `<|im_end|>` as EOS. */
  readonly chat?: boolean;
  readonly seed?: number;
  readonly weightType?: LlamaWeightType;
  readonly name?: string;
}

export const DEFAULT_FIXTURE_SEED = 42;

export async function writeTinyLlamaModel(path: string, options: TinyLlamaOptions = {}): Promise<{ bytes: number }> {
  const chat = options.chat ?? false;
  return writeLlamaModel(path, {
    shape: LLAMA_SHAPES.tiny,
    weightType: options.weightType ?? "f32",
    seed: options.seed ?? DEFAULT_FIXTURE_SEED,
    name: options.name ?? (chat ? "tiny-random-llama-chat" : "tiny-random-llama"),
    ...(chat ? { chatTemplate: "chatml" as const } : {}),
  });
}

/** Copies the first `keepFraction` (0..1) of `src`, imitating an interrupted download. */
export async function writeTruncatedCopy(src: string, dst: string, keepFraction: number): Promise<{ bytes: number }> {
  if (!(keepFraction >= 0 && keepFraction < 1)) throw new RangeError(`keepFraction must be in [0, 1), got ${keepFraction}`);
  const { size } = await stat(src);
  const bytes = Math.floor(size * keepFraction);
  // copyFile + truncate lets the kernel do the copy (possibly reflinked) instead of streaming through JS.
  await copyFile(src, dst);
  await truncate(dst, bytes);
  return { bytes };
}

/** A GGUF-shaped header whose magic is wrong, so only the magic check can reject it. */
export async function writeBadMagicFile(dst: string): Promise<void> {
  const header = Buffer.alloc(4096);
  header.write("GGUX", 0, "latin1");
  header.writeUInt32LE(3, 4);
  header.writeBigUInt64LE(0n, 8); // tensor count
  header.writeBigUInt64LE(0n, 16); // kv count
  for (let i = 24; i < header.length; i++) header[i] = (i * 31) & 0xff;
  await writeFile(dst, header);
}

/** Plain prose, e.g. a user pointing the server at a README by mistake. */
export async function writeNotGgufFile(dst: string): Promise<void> {
  const words = ["lorem", "ipsum", "model", "weights", "server", "token", "random", "text"];
  const lines: string[] = [];
  for (let line = 0; line < 64; line++) lines.push(Array.from({ length: 12 }, (_, i) => words[(line * 7 + i * 3) % words.length]).join(" "));
  await writeFile(dst, lines.join("\n") + "\n", "utf8");
}

/**
 * Copies a model with every F32 tensor overwritten by NaN: it loads fine in llama.cpp (weights are not checked
 * unless checkTensors is on) and then cannot produce a meaningful token, which the load canary must catch.
 */
export async function writeNanWeightsCopy(src: string, dst: string): Promise<void> {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  await copyFile(src, dst);
  const info = await readGgufFileInfo(src, { readTensorInfo: true, logWarnings: false });
  const { open } = await import("node:fs/promises");
  const handle = await open(dst, "r+");
  try {
    for (const tensor of info.tensorInfo ?? []) {
      if (tensor.ggmlType !== 0) continue; // F32 only: enough to poison every layer of the test models
      const count = tensor.dimensions.reduce<number>((n, d) => n * Number(d), 1);
      const nan = Buffer.alloc(count * 4);
      for (let i = 0; i < count; i++) nan.writeFloatLE(Number.NaN, i * 4);
      await handle.write(nan, 0, nan.length, Number(tensor.fileOffset));
    }
  } finally {
    await handle.close();
  }
}
