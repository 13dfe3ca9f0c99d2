/**
 * scripts/build-llama-server.sh run twice at once on one folder (two `npm test`, or `npm test` and
 * `lmx engines build`): the second waits for the first's build, reports its progress meanwhile, and then uses it
 * instead of compiling again. The real script runs, with git, cmake, make and c++ replaced by stubs on PATH so the
 * "compile" takes exactly as long as the test wants and nothing is really built.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { runLlamaServerBuild, type BuildProgress, type LlamaServerBuildResult } from "../../src/engines/llama-server/build.js";
import { PROJECT_ROOT } from "../helpers/models.js";
import { alive } from "../helpers/processes.js";
import { waitFor } from "../helpers/server.js";

const SCRIPT = path.join(PROJECT_ROOT, "scripts", "build-llama-server.sh");
const dir = mkdtempSync(path.join(os.tmpdir(), "lmx-build-lock-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Stub tools: `cmake --build` logs one make-style line, then blocks until $FAKE_STATE/release exists. */
function fakeTools(state: string): NodeJS.ProcessEnv {
  const bin = path.join(state, "bin");
  mkdirSync(bin, { recursive: true });
  const tools: Record<string, string> = {
    git: `case "$1" in
  bundle) echo "abcdef0123456789abcdef0123456789abcdef01 HEAD" ;;
  clone) mkdir -p "$4/.git" ;;
  -C) [ "$3" = rev-parse ] && echo abcdef0 ;;
esac
exit 0`,
    cmake: `[ "$1" = --build ] || exit 0
echo "$$" >> "$FAKE_STATE/builds"
echo "[ 10%] Building CXX object ggml/src/ggml.c.o"
echo "[ 12%] Building CXX object src/llama.cpp.o"
touch "$FAKE_STATE/building"
while [ ! -f "$FAKE_STATE/release" ]; do sleep 0.05; done
echo "[100%] Linking CXX executable bin/llama-server"
mkdir -p "$2/bin" && printf '#!/bin/sh\\necho fake\\n' > "$2/bin/llama-server" && chmod +x "$2/bin/llama-server"`,
    make: "exit 0",
    "c++": "exit 0",
  };
  for (const [name, body] of Object.entries(tools)) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  return { PATH: `${bin}${path.delimiter}${process.env["PATH"] ?? ""}`, FAKE_STATE: state };
}

const builds = (state: string) =>
  existsSync(path.join(state, "builds")) ? readFileSync(path.join(state, "builds"), "utf8").trim().split("\n").length : 0;

test("a second build of the same folder waits for the first, shows its progress, then reuses its binary", async () => {
  const state = mkdtempSync(path.join(dir, "state-"));
  const out = path.join(dir, "out-shared");
  const env = fakeTools(state);
  const first = runLlamaServerBuild({ script: SCRIPT, outDir: out, env, pollMs: 50 });
  await waitFor(() => existsSync(path.join(state, "building")), 30_000, "the first build to compile");

  const messages: string[] = [];
  const progress: BuildProgress[] = [];
  let secondDone: LlamaServerBuildResult | null = null;
  const second = runLlamaServerBuild({
    script: SCRIPT,
    outDir: out,
    env,
    pollMs: 50,
    onMessage: (l) => messages.push(l),
    onProgress: (p) => progress.push(p),
  });
  void second.then((r) => (secondDone = r));
  await waitFor(() => messages.some((m) => /waiting for another build/.test(m)), 30_000, "the second build to wait");
  await waitFor(() => progress.some((p) => p.phase === "waiting" && p.percent === 12 && p.compiled === 2), 30_000, "the first build's progress");
  assert.equal(secondDone, null, "the second build is still waiting while the first compiles");

  writeFileSync(path.join(state, "release"), "");
  const [a, b] = await Promise.all([first, second]);
  const binary = path.join(out, "bin", "llama-server");
  assert.equal(a.ok, true, `first: ${a.reason}`);
  assert.equal(b.ok, true, `second: ${b.reason}`);
  assert.equal(a.binary, binary);
  assert.equal(b.binary, binary, "the second run uses the first run's binary");
  assert.equal(builds(state), 1, "compiled once");
  assert.ok(
    messages.some((m) => /already built from llama\.cpp abcdef0 .*reusing it/.test(m)),
    messages.join("\n"),
  );
  const meta = JSON.parse(readFileSync(path.join(out, "bin", "llama-server.json"), "utf8")) as { commit: string; native: string };
  assert.equal(meta.commit, "abcdef0");

  // other flags are another build: the same folder is rebuilt, not reused
  const portable = await runLlamaServerBuild({ script: SCRIPT, outDir: out, env: { ...env, NATIVE: "OFF" }, pollMs: 50 });
  assert.equal(portable.ok, true, `portable: ${portable.reason}`);
  assert.equal(builds(state), 2);
});

test("a build killed with SIGKILL leaves no lock behind: the next build runs at once", async () => {
  const state = mkdtempSync(path.join(dir, "state-"));
  const out = path.join(dir, "out-killed");
  const env = fakeTools(state);
  // its own process group, so the kill takes the script and its "compiler" at once, as a closed terminal does
  const killed = spawn("bash", [SCRIPT, out], { env: { ...process.env, ...env }, stdio: "ignore", detached: true });
  await waitFor(() => existsSync(path.join(state, "building")), 30_000, "the build to compile");
  process.kill(-killed.pid!, "SIGKILL");
  await waitFor(() => !alive(killed.pid!), 10_000, "the killed build to exit");
  writeFileSync(path.join(state, "release"), "");
  const messages: string[] = [];
  const next = await runLlamaServerBuild({ script: SCRIPT, outDir: out, env, pollMs: 50, onMessage: (l) => messages.push(l) });
  assert.equal(next.ok, true, `${next.reason}`);
  assert.equal(builds(state), 2, "the second build compiled");
  assert.ok(!messages.some((m) => /waiting/.test(m)), messages.join("\n"));
});

test("a failed build says why, in the script's own words", async () => {
  const inside = path.join(PROJECT_ROOT, "dist", "not-here");
  const result = await runLlamaServerBuild({ script: SCRIPT, outDir: inside, env: fakeTools(mkdtempSync(path.join(dir, "state-"))), pollMs: 50 });
  assert.equal(result.ok, false);
  assert.match(result.reason ?? "", /is inside the repository/);
  assert.equal(existsSync(inside), false);
});

test("npm test's runner skips the llama-server tests with the build's own failure, not a guess", async () => {
  const state = mkdtempSync(path.join(dir, "state-"));
  const env = fakeTools(state);
  // this cmake fails to compile, after writing a compiler error to the log
  writeFileSync(
    path.join(state, "bin", "cmake"),
    '#!/bin/sh\n[ "$1" = --build ] || exit 0\necho "llama.cpp:1:1: error: out of memory (fake)"\nexit 1\n',
  );
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("LMX_") && !k.startsWith("NODE_TEST") && k !== "CI") clean[k] = v;
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "scripts", "run-tests.mjs"), "llama-server-engine"], {
    cwd: PROJECT_ROOT,
    env: { ...clean, ...env, XDG_CACHE_HOME: path.join(dir, "cache-failing") } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output += b.toString()));
  child.stderr.on("data", (b: Buffer) => (output += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(code, 0, output);
  assert.match(output, /error: out of memory \(fake\)/, "the log's tail is shown");
  // the engine tests' own skip reason is the build's failure
  assert.match(output, /# building llama-server into .*cache-failing.* failed: the build failed \(exit status 1\)/, output);
});
