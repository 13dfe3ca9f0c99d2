/**
 * Reads what a GGUF file says about itself without loading it: architecture, size, quantization, whether it
 * is a chat, completion or embedding model, and whether the file is complete. node-llama-cpp's header reader
 * does not notice truncation (a cut file reads back with zeros), so completeness is checked here: the last
 * tensor's data must end inside the file.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { GgufFileType, readGgufFileInfo, type GgufFileInfo } from "node-llama-cpp";
import type { ModelType } from "../config/schema.js";

export interface GgufFacts {
  architecture: string | null;
  name: string | null;
  parameterCount: number | null;
  quantization: string | null;
  contextLength: number | null;
  type: ModelType;
  /** Null when complete; otherwise why not (truncated, unreadable header). */
  problem: string | null;
}

/** [values per block, bytes per block] for each ggml tensor type id (ggml.h's type traits). */
const GGML_BLOCKS: Record<number, [number, number]> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 18],
  3: [32, 20],
  6: [32, 22],
  7: [32, 24],
  8: [32, 34],
  9: [32, 36],
  10: [256, 84],
  11: [256, 110],
  12: [256, 144],
  13: [256, 176],
  14: [256, 210],
  15: [256, 292],
  16: [256, 66],
  17: [256, 74],
  18: [256, 98],
  19: [256, 50],
  20: [32, 18],
  21: [256, 110],
  22: [256, 82],
  23: [256, 136],
  24: [1, 1],
  25: [1, 2],
  26: [1, 4],
  27: [1, 8],
  28: [1, 8],
  29: [256, 56],
  30: [1, 2],
  34: [256, 54],
  35: [256, 66],
  39: [32, 17],
};

const EMBEDDING_ARCHITECTURES = new Set(["bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert", "neo-bert"]);

const cache = new Map<string, { key: string; facts: GgufFacts }>();

export async function inspectGguf(path: string): Promise<GgufFacts> {
  const stat = statSync(path);
  const key = `${stat.size}:${stat.mtimeMs}`;
  const cached = cache.get(path);
  if (cached?.key === key) return cached.facts;
  const facts = await readFacts(path, stat.size);
  cache.set(path, { key, facts });
  return facts;
}

/** The magic is checked here, not by node-llama-cpp, whose error quotes the file's first bytes back. */
function hasGgufMagic(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString("latin1") === "GGUF";
  } finally {
    closeSync(fd);
  }
}

/** A header read error as a message that never quotes the file's content. */
export function ggufReadProblem(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  if (/GGUF magic/i.test(message)) return "not a GGUF file (bad magic)";
  return `unreadable GGUF header: ${message.slice(0, 200)}`;
}

async function readFacts(path: string, fileSize: number): Promise<GgufFacts> {
  const unreadable = (problem: string): GgufFacts => ({
    architecture: null,
    name: null,
    parameterCount: null,
    quantization: null,
    contextLength: null,
    type: "chat",
    problem,
  });
  try {
    if (!hasGgufMagic(path)) return unreadable("not a GGUF file (bad magic)");
  } catch (error) {
    return unreadable(`unreadable file: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  let info: GgufFileInfo;
  try {
    info = await readGgufFileInfo(path, { readTensorInfo: true, logWarnings: false, spliceSplitFiles: false });
  } catch (error) {
    return unreadable(ggufReadProblem(error));
  }
  const metadata = info.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
  const general = metadata["general"] ?? {};
  const architecture = typeof general["architecture"] === "string" ? general["architecture"] : null;
  const archMeta = architecture ? (metadata[architecture] ?? {}) : {};
  const tokenizer = metadata["tokenizer"] ?? {};
  const fileType = typeof general["file_type"] === "number" ? general["file_type"] : null;
  const tensors = info.tensorInfo ?? [];
  let parameterCount = 0;
  let dataEnd = 0;
  let unknownType = false;
  for (const tensor of tensors) {
    const elements = tensor.dimensions.reduce<number>((product, d) => product * Number(d), 1);
    parameterCount += elements;
    const block = GGML_BLOCKS[tensor.ggmlType];
    if (!block) {
      unknownType = true;
      continue;
    }
    dataEnd = Math.max(dataEnd, Number(tensor.fileOffset) + Math.ceil(elements / block[0]) * block[1]);
  }
  let problem: string | null = null;
  if (tensors.length === 0 || tensors.length !== Number(info.tensorCount)) problem = "the header lists tensors it does not describe (cut header)";
  else if (dataEnd > fileSize) problem = `truncated: tensor data runs to byte ${dataEnd} but the file has ${fileSize} bytes`;
  else if (unknownType && Number(tensors.at(-1)?.fileOffset ?? 0) >= fileSize) problem = "truncated: tensor data starts past the end of the file";
  const isEmbedding =
    (architecture !== null && EMBEDDING_ARCHITECTURES.has(architecture)) ||
    (archMeta["pooling_type"] !== undefined && archMeta["pooling_type"] !== 0 && tokenizer["chat_template"] === undefined);
  const type: ModelType = isEmbedding ? "embedding" : tokenizer["chat_template"] !== undefined ? "chat" : "completion";
  return {
    architecture,
    name: typeof general["name"] === "string" ? general["name"] : null,
    parameterCount: tensors.length > 0 ? parameterCount : null,
    quantization: fileType !== null ? (GgufFileType[fileType]?.replace(/^MOSTLY_/, "") ?? String(fileType)) : null,
    contextLength: typeof archMeta["context_length"] === "number" ? archMeta["context_length"] : null,
    type,
    problem,
  };
}
