/**
 * Model files are served only from the folders the operator configured. A symlink in a model folder (a cloned
 * repo may carry one) could otherwise point the server at any file it can read — `/etc/passwd`, a key — and
 * the file's first bytes came back in error messages. Links are resolved and their targets must stay inside one
 * of the folders; the HF cache's own snapshot → blobs links stay inside the cache, so they pass.
 */
import { realpathSync } from "node:fs";
import path from "node:path";
import { SPLIT_GGUF } from "./sources/types.js";

export const OUTSIDE_FOLDERS =
  "it links to a file outside the configured model folders (model_dirs, the HF cache, LM Studio, Ollama), which is not served; add the target's folder to model_dirs to serve it";

export class ModelFolders {
  private readonly roots: string[];

  constructor(folders: ReadonlyArray<string | null>) {
    const roots = new Set<string>();
    for (const folder of folders) {
      if (!folder) continue;
      const real = realOrNull(folder);
      if (real) roots.add(real);
    }
    this.roots = [...roots];
  }

  /** True when `file`, links resolved, is one of the folders or inside one; a file that does not exist passes (it is reported as missing). */
  contains(file: string): boolean {
    const real = realOrNull(file);
    if (real === null) return true;
    return this.roots.some((root) => real === root || real.startsWith(root.endsWith(path.sep) ? root : root + path.sep));
  }

  /** For a model file: it and, for a split GGUF, every part llama.cpp would open next to it. */
  containsModel(file: string): boolean {
    const split = SPLIT_GGUF.exec(file);
    if (!split) return this.contains(file);
    for (let i = 1; i <= Number(split[2]); i++) {
      if (!this.contains(file.replace(SPLIT_GGUF, `-${String(i).padStart(5, "0")}-of-${split[2]}.gguf`))) return false;
    }
    return true;
  }
}

function realOrNull(file: string): string | null {
  try {
    return realpathSync(file);
  } catch {
    return null;
  }
}
