#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner, one file at a time:
// integration tests start real runner processes and a 2-core machine must not run two suites' models at once.
import { existsSync, readdirSync } from "node:fs";
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
 * It is built once per machine into the user cache, the folder `lmx engines build` uses too (outside the
 * repository; ~10 min on 2 cores), and rebuilt when node-llama-cpp brings another llama.cpp. The build script
 * holds a lock on that folder: a second `npm test` started meanwhile waits for the first one's build and uses it.
 * LMX_TEST_LLAMA_SERVER names a binary instead. When there is none, the tests are skipped with the real reason
 * (LMX_TEST_LLAMA_SERVER_MISSING, read by test/helpers/llama-server.ts).
 */
async function ensureLlamaServer() {
  if (process.env.LMX_TEST_LLAMA_SERVER) return;
  const dist = (file) => pathToFileURL(path.join(root, "dist", "src", ...file.split("/"))).href;
  if (!existsSync(path.join(root, "dist", "src", "engines", "llama-server", "build.js"))) return; // not built: "no test files found" below says so
  const { userCacheLlamaServerDir } = await import(dist("engines/llama-server/binary.js"));
  const { runLlamaServerBuild } = await import(dist("engines/llama-server/build.js"));
  const { buildProgressPrinter } = await import(dist("cli/build-progress.js"));
  const cacheDir = userCacheLlamaServerDir();
  const printer = buildProgressPrinter((text) => process.stderr.write(text), process.stderr.isTTY === true);
  const started = Date.now();
  let reused = false;
  const result = await runLlamaServerBuild({
    script: path.join(root, "scripts", "build-llama-server.sh"),
    outDir: cacheDir,
    onMessage: (line) => {
      if (/reusing it/.test(line)) reused = true;
      else printer.message(line);
    },
    onProgress: (progress) => {
      if (progress.phase === "building" && progress.compiled === 0 && progress.percent === 0) return;
      printer.progress(progress);
    },
  });
  printer.done();
  if (result.ok) {
    if (!reused) console.error(`built llama-server in ${Math.round((Date.now() - started) / 1000)} s: ${result.binary} (log: ${result.log})`);
    return;
  }
  if (result.logTail.length > 0) console.error(result.logTail.join("\n"));
  const message = `building llama-server into ${cacheDir} failed: ${result.reason}`;
  if (process.env.CI) {
    console.error(`${message}; CI needs it`);
    process.exit(1);
  }
  console.error(`${message}; the llama-server engine's tests are skipped (CI fails instead)`);
  process.env.LMX_TEST_LLAMA_SERVER_MISSING = message;
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
