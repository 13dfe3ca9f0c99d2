/** Plain folders of GGUF files (configured model_dirs, LM Studio's models folder), scanned recursively. */
import { readdirSync, statSync, type Dirent } from "node:fs";
import path from "node:path";
import type { ModelSource } from "../types.js";
import { NOT_A_MODEL, SPLIT_GGUF, missingSplitParts, type DiscoveredModel } from "./types.js";

const MAX_DEPTH = 8;

export function scanGgufFolder(root: string, source: ModelSource, idPrefix = ""): DiscoveredModel[] {
  const files: Array<{ path: string; size: number }> = [];
  walk(root, 0, files);
  const present = new Set(files.map((f) => f.path));
  const byId = new Map<string, number>();
  const found: DiscoveredModel[] = [];
  for (const file of files.sort((a, b) => a.path.localeCompare(b.path))) {
    const name = path.basename(file.path);
    if (NOT_A_MODEL.test(name)) continue;
    const split = SPLIT_GGUF.exec(name);
    if (split && split[1] !== "00001") continue;
    const missing = missingSplitParts(file.path, present).map((p) => path.relative(root, p));
    const parts = split ? files.filter((f) => f.path.replace(SPLIT_GGUF, "") === file.path.replace(SPLIT_GGUF, "")) : [file];
    const stem = name.replace(SPLIT_GGUF, ".gguf").replace(/\.gguf$/i, "");
    const relativeStem = path
      .relative(root, file.path)
      .replace(/\\/g, "/")
      .replace(SPLIT_GGUF, ".gguf")
      .replace(/\.gguf$/i, "");
    const id = idPrefix + (byId.has(stem) ? relativeStem : stem);
    byId.set(stem, (byId.get(stem) ?? 0) + 1);
    found.push({
      id,
      aliases: [],
      path: file.path,
      localPath: path.dirname(file.path),
      source,
      format: "gguf",
      sizeBytes: parts.reduce((sum, p) => sum + p.size, 0),
      missing,
    });
  }
  return found;
}

function walk(dir: string, depth: number, out: Array<{ path: string; size: number }>): void {
  if (depth > MAX_DEPTH) return;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return; // a missing or unreadable folder is not fatal to serving; /admin/status reports folders
  }
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      walk(full, depth + 1, out);
      continue;
    }
    if (!/\.gguf$/i.test(entry.name)) continue;
    try {
      const stat = statSync(full); // follows symlinks, so linked model stores count; FIFOs and sockets do not
      if (stat.isFile()) out.push({ path: full, size: stat.size });
    } catch {
      continue;
    }
  }
}
