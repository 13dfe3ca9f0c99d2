/**
 * Ollama's store: manifests (`manifests/<registry>/<namespace>/<model>/<tag>`) whose model layer points at a
 * GGUF blob (`blobs/sha256-<digest>`). Served read-only from where Ollama keeps it; nothing is copied.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { DiscoveredModel } from "./types.js";

const MODEL_LAYER = "application/vnd.ollama.image.model";

export function defaultOllamaDir(env: Record<string, string | undefined> = process.env): string {
  return env["OLLAMA_MODELS"] ?? path.join(os.homedir(), ".ollama", "models");
}

export function scanOllama(root: string): DiscoveredModel[] {
  const manifests = path.join(root, "manifests");
  const found: DiscoveredModel[] = [];
  for (const registry of list(manifests)) {
    for (const namespace of list(path.join(manifests, registry))) {
      for (const model of list(path.join(manifests, registry, namespace))) {
        for (const tag of list(path.join(manifests, registry, namespace, model))) {
          const file = path.join(manifests, registry, namespace, model, tag);
          const discovered = readManifest(root, file, registry, namespace, model, tag);
          if (discovered) found.push(discovered);
        }
      }
    }
  }
  return found;
}

function readManifest(root: string, file: string, registry: string, namespace: string, model: string, tag: string): DiscoveredModel | null {
  let manifest: { layers?: Array<{ mediaType?: string; digest?: string; size?: number }> };
  try {
    manifest = JSON.parse(readFileSync(file, "utf8")) as typeof manifest;
  } catch {
    return null;
  }
  const layer = manifest.layers?.find((l) => l.mediaType === MODEL_LAYER);
  if (!layer?.digest || !/^sha256:[0-9a-f]{64}$/.test(layer.digest)) return null;
  const blob = path.join(root, "blobs", layer.digest.replace(":", "-"));
  const name = registry === "registry.ollama.ai" && namespace === "library" ? model : `${registry}/${namespace}/${model}`;
  let exists = false;
  try {
    exists = statSync(blob).isFile();
  } catch {
    exists = false;
  }
  return {
    id: `ollama:${name}:${tag}`,
    aliases: [],
    path: blob,
    localPath: path.dirname(blob),
    source: "ollama",
    format: "gguf",
    sizeBytes: layer.size ?? 0,
    missing: exists ? [] : [path.relative(root, blob)],
  };
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => !n.startsWith("."));
  } catch {
    return [];
  }
}
