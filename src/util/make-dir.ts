import { mkdirSync, statSync } from "node:fs";
import path from "node:path";

/**
 * `mkdir -p` that always ends. Node's own `mkdir({recursive: true})` loops forever when mkdir answers ENOENT
 * although the parent exists, which is what pseudo filesystems (/proc, /sys) do: here each missing folder is
 * made once, top-down, and the first refusal is thrown as it is.
 */
export function makeDirSync(dir: string): void {
  const missing: string[] = [];
  let current = path.resolve(dir);
  for (;;) {
    try {
      if (statSync(current).isDirectory()) break;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${current}'`), { code: "ENOTDIR", path: current });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    const parent = path.dirname(current);
    if (parent === current) break;
    missing.push(current);
    current = parent;
  }
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder);
    } catch (error) {
      // made by someone else in the meantime is as good as made here
      if ((error as NodeJS.ErrnoException).code === "EEXIST" && statSync(folder).isDirectory()) continue;
      throw error;
    }
  }
}
