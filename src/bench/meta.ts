/** Where a result came from: the commit of the code that produced it, when the code lives in a git checkout. */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | null | undefined;

/** The folder holding package.json, found from this file whether it runs from src/ or dist/src/. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** HEAD's short hash, with "-dirty" when the tree has changes (a number measured on uncommitted code says so). */
export function gitCommit(): string | null {
  if (cached !== undefined) return cached;
  const env = process.env["LMX_GIT_COMMIT"];
  if (env) return (cached = env);
  try {
    const cwd = projectRoot();
    const head = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd, timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd, timeout: 5_000, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
    cached = head ? (dirty ? `${head}-dirty` : head) : null;
  } catch {
    cached = null;
  }
  return cached;
}
