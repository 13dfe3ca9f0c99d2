#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner, one file at a time:
// integration tests start real runner processes and a 2-core machine must not run two suites' models at once.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const shared = path.resolve(root, "..", "shared", "models");
if (process.env.CI && !existsSync(path.join(shared, "stories260K.gguf"))) {
  console.error(`CI requires the real test models in ${shared}; they are missing.`);
  process.exit(1);
}
const filter = process.argv.slice(2);
if (filter.length === 0 || filter.some((word) => "llama-server".includes(word) || word.includes("llama-server"))) await ensureLlamaServer();

/**
 * The llama-server engine's tests need a llama-server built from the llama.cpp source bundled in node-llama-cpp.
 * It is built once per machine into the user cache (outside the repository; ~10 min on 2 cores) and rebuilt when
 * node-llama-cpp brings another llama.cpp. LMX_TEST_LLAMA_SERVER names a binary instead.
 */
async function ensureLlamaServer() {
  if (process.env.LMX_TEST_LLAMA_SERVER) return;
  const binaryModule = path.join(root, "dist", "src", "engines", "llama-server", "binary.js");
  if (!existsSync(binaryModule)) return; // not built: "no test files found" below says so
  // the same folder the tests' helper looks in (test/helpers/llama-server.ts)
  const { userCacheLlamaServerDir } = await import(pathToFileURL(binaryModule).href);
  const cacheDir = userCacheLlamaServerDir();
  const binary = path.join(cacheDir, "bin", "llama-server");
  const bundle = path.join(root, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
  const heads = spawnSync("git", ["bundle", "list-heads", bundle], { encoding: "utf8" });
  const wanted = heads.status === 0 ? (heads.stdout.split(/\s+/)[0] ?? "").slice(0, 7) : null;
  let built = null;
  try {
    built = JSON.parse(readFileSync(path.join(cacheDir, "bin", "llama-server.json"), "utf8")).commit;
  } catch {
    // not built yet
  }
  if (existsSync(binary) && (wanted === null || built === wanted)) return;
  console.error(`building llama-server (llama.cpp ${wanted ?? "?"}) into ${cacheDir} for the llama-server engine tests; once per machine`);
  // the compiler's warnings run to thousands of lines: they go to a log, and only a failure shows its tail
  mkdirSync(cacheDir, { recursive: true });
  const log = path.join(cacheDir, "build.log");
  const out = openSync(log, "w");
  const started = Date.now();
  const result = spawnSync("bash", [path.join(root, "scripts", "build-llama-server.sh"), cacheDir], { stdio: ["ignore", out, out] });
  closeSync(out);
  if (result.status === 0) console.error(`built llama-server in ${Math.round((Date.now() - started) / 1000)} s (log: ${log})`);
  if (result.status !== 0) {
    console.error(readFileSync(log, "utf8").split("\n").slice(-40).join("\n"));
    const message = `building llama-server failed (exit ${result.status}); its tests cannot run`;
    if (process.env.CI) {
      console.error(message);
      process.exit(1);
    }
    console.error(`${message}; they are skipped (CI fails instead)`);
  }
}
function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".test.js") ? [path.join(dir, e.name)] : [],
  );
}
const files = walk(path.join(root, "dist", "test"))
  .filter((f) => filter.length === 0 || filter.some((word) => f.includes(word)))
  .sort();
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=1", "--test-reporter=spec", ...files], {
  stdio: "inherit",
  cwd: root,
});
process.exit(result.status ?? 1);
