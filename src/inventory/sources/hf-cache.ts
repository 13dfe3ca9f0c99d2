/**
 * The Hugging Face hub cache (`models--org--name/{blobs,refs,snapshots/<commit>}`), as huggingface_hub,
 * llama.cpp and our own downloads write it. Completeness is checked, not assumed: `.incomplete` blobs,
 * dangling snapshot links, shards named by a safetensors index but absent, and missing split-GGUF parts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { NOT_A_MODEL, SPLIT_GGUF, missingSplitParts, type DiscoveredModel, type ModelFormat } from "./types.js";

export function defaultHfCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env["HF_HUB_CACHE"]) return env["HF_HUB_CACHE"];
  if (env["HF_HOME"]) return path.join(env["HF_HOME"], "hub");
  return path.join(os.homedir(), ".cache", "huggingface", "hub");
}

export function repoFolderName(repo: string): string {
  return `models--${repo.replace(/\//g, "--")}`;
}

export function scanHfCache(cacheDir: string): DiscoveredModel[] {
  let names: string[];
  try {
    names = readdirSync(cacheDir).filter((n) => n.startsWith("models--"));
  } catch {
    return [];
  }
  return names.sort().flatMap((name) => scanRepo(cacheDir, name));
}

function scanRepo(cacheDir: string, folder: string): DiscoveredModel[] {
  const [org, ...rest] = folder.slice("models--".length).split("--");
  const repo = rest.length > 0 ? `${org}/${rest.join("--")}` : (org ?? folder);
  const repoDir = path.join(cacheDir, folder);
  const snapshot = currentSnapshot(repoDir);
  const incompleteBlobs = listDir(path.join(repoDir, "blobs")).filter((b) => b.endsWith(".incomplete"));
  if (!snapshot) {
    if (incompleteBlobs.length === 0) return [];
    return [
      entry(
        repo,
        repo,
        repoDir,
        repoDir,
        "unknown",
        0,
        incompleteBlobs.map((b) => `blobs/${b}`),
      ),
    ];
  }
  const files = walkSnapshot(snapshot);
  const present = new Set(files.filter((f) => f.exists).map((f) => f.relative));
  const dangling = files.filter((f) => !f.exists).map((f) => f.relative);
  const downloading = incompleteBlobs.map((b) => `blobs/${b}`);
  const ggufs = files.filter((f) => /\.gguf$/i.test(f.relative) && !NOT_A_MODEL.test(path.basename(f.relative)));
  const models: DiscoveredModel[] = [];
  const firstParts = ggufs.filter((f) => {
    const split = SPLIT_GGUF.exec(f.relative);
    return !split || split[1] === "00001";
  });
  if (firstParts.length > 0) {
    const stems = firstParts.map((f) =>
      path
        .basename(f.relative)
        .replace(SPLIT_GGUF, ".gguf")
        .replace(/\.gguf$/i, ""),
    );
    const quants = stems.map(quantizationTag);
    for (const [index, file] of firstParts.entries()) {
      const stem = stems[index]!;
      const id = firstParts.length === 1 ? repo : `${repo}:${stem}`;
      // `org/name:Q4_K_M` (how pulls and Ollama-style ids name a quantization) reaches the file when unambiguous
      const quant = quants[index];
      const aliases = [
        ...(firstParts.length === 1 ? [`${repo}:${stem}`] : []),
        ...(quant && quants.filter((q) => q === quant).length === 1 && `${repo}:${quant}` !== id ? [`${repo}:${quant}`] : []),
      ];
      const missing = [...missingSplitParts(file.relative, present), ...(file.exists ? [] : [file.relative]), ...downloading];
      const parts = files.filter((f) => f.relative.replace(SPLIT_GGUF, "") === file.relative.replace(SPLIT_GGUF, "") && f.exists);
      const size = parts.reduce((sum, p) => sum + p.size, 0);
      models.push(entry(id, repo, path.join(snapshot, file.relative), snapshot, "gguf", size, missing, aliases));
    }
    return models;
  }
  const safetensors = files.filter((f) => f.relative.endsWith(".safetensors"));
  const missing = [...dangling, ...downloading, ...missingFromIndex(snapshot, present)];
  const format: ModelFormat =
    safetensors.length > 0 || missing.some((m) => m.endsWith(".safetensors"))
      ? isMlx(repo, snapshot)
        ? "mlx-safetensors"
        : "safetensors"
      : "unknown";
  const size = files.filter((f) => f.exists).reduce((sum, f) => sum + f.size, 0);
  return [entry(repo, repo, snapshot, snapshot, format, size, [...new Set(missing)])];
}

/** The quantization a GGUF file name states (Q4_K_M, IQ3_XS, Q8_0, F16...), upper-cased, if any. */
export function quantizationTag(stem: string): string | null {
  const match = /(?:^|[-_.])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=$|[-_.])/i.exec(stem);
  return match?.[1] ? match[1].toUpperCase() : null;
}

function entry(
  id: string,
  _repo: string,
  file: string,
  localPath: string,
  format: ModelFormat,
  size: number,
  missing: string[],
  aliases: string[] = [],
): DiscoveredModel {
  return { id, aliases, path: file, localPath, source: "hf_cache", format, sizeBytes: size, missing };
}

/** The snapshot `refs/main` points at, else the most recently written one. */
function currentSnapshot(repoDir: string): string | null {
  const snapshots = path.join(repoDir, "snapshots");
  try {
    const commit = readFileSync(path.join(repoDir, "refs", "main"), "utf8").trim();
    // a commit hash names a folder in snapshots/; "../.." in a hand-edited ref would walk anywhere
    if (/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(commit) && existsSync(path.join(snapshots, commit))) return path.join(snapshots, commit);
  } catch {
    // no refs/main: a download by revision, or an interrupted one
  }
  const candidates = listDir(snapshots)
    .map((name) => ({ name, mtime: safeMtime(path.join(snapshots, name)) }))
    .sort((a, b) => b.mtime - a.mtime);
  return candidates[0] ? path.join(snapshots, candidates[0].name) : null;
}

function walkSnapshot(root: string): Array<{ relative: string; exists: boolean; size: number }> {
  const out: Array<{ relative: string; exists: boolean; size: number }> = [];
  const walk = (dir: string) => {
    for (const name of listDir(dir)) {
      const full = path.join(dir, name);
      let stat;
      try {
        stat = statSync(full);
      } catch {
        out.push({ relative: path.relative(root, full), exists: false, size: 0 }); // a dangling link
        continue;
      }
      if (stat.isDirectory()) walk(full);
      else out.push({ relative: path.relative(root, full), exists: true, size: stat.size });
    }
  };
  walk(root);
  return out;
}

function missingFromIndex(snapshot: string, present: ReadonlySet<string>): string[] {
  const missing: string[] = [];
  for (const index of ["model.safetensors.index.json", "pytorch_model.bin.index.json"]) {
    const file = path.join(snapshot, index);
    if (!existsSync(file)) continue;
    try {
      const parsed = JSON.parse(readFileSync(file, "utf8")) as { weight_map?: Record<string, string> };
      for (const shard of new Set(Object.values(parsed.weight_map ?? {}))) if (!present.has(shard)) missing.push(shard);
    } catch {
      missing.push(`${index} (unreadable)`);
    }
  }
  return missing;
}

/** MLX conversions carry a `quantization` block with `group_size`/`bits` in config.json, or say mlx in the name. */
function isMlx(repo: string, snapshot: string): boolean {
  if (/mlx/i.test(repo)) return true;
  try {
    const config = JSON.parse(readFileSync(path.join(snapshot, "config.json"), "utf8")) as { quantization?: { group_size?: unknown } };
    return typeof config.quantization?.group_size === "number";
  } catch {
    return false;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeMtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}
