#!/usr/bin/env node
// `npm start`'s build step: runs tsc only when a TypeScript source, tsconfig.json or package.json is newer than
// the last build this script made (dist/.build-stamp). A full tsc takes ~13 s on 2 cores; starting without it ~1 s.
// Usage: node scripts/build-if-stale.mjs [PROJECT_DIR]   (default: this repository)
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Why a build is needed (a sentence), or null when dist/ is newer than every input. */
export function staleReason(root) {
  const stamp = path.join(root, "dist", ".build-stamp");
  if (!existsSync(stamp)) return "no build yet";
  const built = statSync(stamp).mtimeMs;
  const inputs = ["tsconfig.json", "package.json"].map((f) => path.join(root, f)).filter((f) => existsSync(f));
  for (const dir of ["src", "test"]) if (existsSync(path.join(root, dir))) inputs.push(...tsFiles(path.join(root, dir)));
  const newer = inputs.find((f) => statSync(f).mtimeMs > built);
  return newer ? `${path.relative(root, newer)} changed` : null;
}

function tsFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : [],
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(here, ".."));
  const reason = staleReason(root);
  if (reason !== null) {
    console.error(`building (${reason})`);
    const started = Date.now();
    // the compiler of this repository, whatever project it builds
    const tsc = path.join(here, "..", "node_modules", "typescript", "bin", "tsc");
    const result = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json")], { stdio: "inherit" });
    if (result.status !== 0) process.exit(result.status ?? 1);
    // stamped with the time the build started: a source saved during the build is newer, and rebuilds next time
    writeFileSync(path.join(root, "dist", ".build-stamp"), "");
    utimesSync(path.join(root, "dist", ".build-stamp"), new Date(started), new Date(started));
  }
}
