import type { ModelSource } from "../types.js";

export type ModelFormat = "gguf" | "mlx-safetensors" | "safetensors" | "unknown";

/** A model found on disk, before its GGUF header (if any) was read. */
export interface DiscoveredModel {
  id: string;
  aliases: string[];
  /** The file a runner opens (the first part of a split GGUF); for non-GGUF formats, the model folder. */
  path: string;
  /** The folder a user would point another tool at: for the HF cache, the snapshot directory. */
  localPath: string;
  source: ModelSource;
  format: ModelFormat;
  sizeBytes: number;
  /** Files the model needs that are not there (missing shards, dangling snapshot links, .incomplete blobs). */
  missing: string[];
  /** Why it is not served although its files are there (a link out of the model folders). */
  problem?: string;
}

export const SPLIT_GGUF = /-(\d{5})-of-(\d{5})\.gguf$/i;
/** GGUF files that are not models of their own: vision projectors, vocab-only files. */
export const NOT_A_MODEL = /(^|[-_.])(mmproj|vocab)([-_.]|$)/i;

/** For a split GGUF, the names of all parts; others are missing if not in `present`. */
export function missingSplitParts(file: string, present: ReadonlySet<string>): string[] {
  const match = SPLIT_GGUF.exec(file);
  if (!match) return [];
  const total = Number(match[2]);
  const missing: string[] = [];
  for (let i = 1; i <= total; i++) {
    const part = file.replace(SPLIT_GGUF, `-${String(i).padStart(5, "0")}-of-${match[2]}.gguf`);
    if (!present.has(part)) missing.push(part);
  }
  return missing;
}
