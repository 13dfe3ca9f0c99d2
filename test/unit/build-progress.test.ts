/** Reading a llama-server build's progress from its log, and showing it on a terminal and in logs. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildProgressLine, buildProgressPrinter } from "../../src/cli/build-progress.js";
import { BuildLogTracker, type BuildProgress } from "../../src/engines/llama-server/build.js";

test("make's [ NN%] lines give the percentage; Building lines count files, whatever the pieces the log arrives in", () => {
  const tracker = new BuildLogTracker();
  const log = [
    "-- Configuring done",
    "[  1%] Building C object ggml/src/CMakeFiles/ggml-base.dir/ggml.c.o",
    "/src/ggml.c:12:3: warning: unused variable [-Wunused-variable]",
    "[ 19%] Linking CXX static library libggml-cpu.a",
    "[ 21%] Building CXX object src/CMakeFiles/llama.dir/Unity/unity_9_cxx.cxx.o",
    "",
  ].join("\n");
  for (let i = 0; i < log.length; i += 7) tracker.feed(log.slice(i, i + 7));
  assert.equal(tracker.percent, 21);
  assert.equal(tracker.compiled, 2);
  assert.equal(tracker.total, null);
});

test("ninja's [done/total] lines give steps of total", () => {
  const tracker = new BuildLogTracker();
  tracker.feed("[1/200] Building CXX object a.o\n[50/200] Building CXX object b.o\n[51/200] Linking CXX static library x.a\n");
  assert.equal(tracker.percent, 25);
  assert.equal(tracker.compiled, 2);
  assert.equal(tracker.total, 200);
});

const at = (elapsedMs: number, percent: number): BuildProgress => ({
  phase: "building",
  percent,
  compiled: percent,
  total: null,
  elapsedMs,
  etaMs: 60_000,
});

test("the progress line says percent, files, elapsed and time left", () => {
  assert.equal(
    buildProgressLine({ ...at(190_000, 42), compiled: 118, etaMs: 260_000 }),
    "llama-server: compiling 42% (118 files), 3m10s elapsed, about 4m20s left",
  );
  assert.match(
    buildProgressLine({ ...at(5_000, 3), phase: "waiting", etaMs: null, total: 200 }),
    /^llama-server: waiting for another process's build: 3% \(3 of 200 steps\), 5s elapsed$/,
  );
});

test("on a terminal one line is redrawn; elsewhere a plain line at most every interval", () => {
  let tty = "";
  const onTty = buildProgressPrinter((t) => (tty += t), true);
  onTty.progress(at(1_000, 1));
  onTty.progress(at(2_000, 2));
  onTty.message("build-llama-server: waiting for another build");
  onTty.done();
  assert.equal(tty.split("\r\x1b[2K").length - 1, 2, "redrawn in place");
  assert.match(tty, /2% \(2 files\), 2s elapsed, about 1m00s left\nbuild-llama-server: waiting for another build\n$/);

  let plain = "";
  const inLog = buildProgressPrinter((t) => (plain += t), false, 30_000);
  for (let s = 0; s <= 90; s++) inLog.progress(at(s * 1000, s));
  inLog.done();
  assert.deepEqual(
    plain
      .trim()
      .split("\n")
      .map((l) => /(\d+)s elapsed|(\d+)m(\d+)s elapsed/.exec(l)?.[0]),
    ["0s elapsed", "30s elapsed", "1m00s elapsed", "1m30s elapsed"],
  );
  assert.ok(!plain.includes("\r"));
});
