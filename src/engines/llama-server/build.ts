/**
 * Runs scripts/build-llama-server.sh for `lmx engines build` and for the test runner, and turns the build log into
 * progress (percent, files compiled, elapsed, ETA). The compiler's output runs to thousands of lines, so it goes to
 * a log file that is read as it grows; a second build of the same folder waits on the script's lock and meanwhile
 * reports the first one's progress from the same log.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import path from "node:path";

export interface BuildProgress {
  /** waiting: another process holds the folder's build lock (its progress is shown); building: this one compiles. */
  phase: "waiting" | "building";
  /** make's "[ 42%]", or ninja's "[118/345]" as a percentage; null before the first compile line. */
  percent: number | null;
  /** Compile steps finished ("Building CXX object …" lines). */
  compiled: number;
  /** Compile steps in all, where the generator says (ninja); null with make. */
  total: number | null;
  elapsedMs: number;
  /** Remaining time at the rate seen so far; null until the percentage has moved. */
  etaMs: number | null;
}

/** Reads make's and ninja's progress lines, fed in arbitrary pieces of the log. */
export class BuildLogTracker {
  percent: number | null = null;
  compiled = 0;
  total: number | null = null;
  private partial = "";

  feed(text: string): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    const make = /^\[\s*(\d{1,3})%\]\s+(.*)$/.exec(line);
    const ninja = make ? null : /^\[(\d+)\/(\d+)\]\s+(.*)$/.exec(line);
    if (make) {
      this.percent = Number(make[1]);
      if (/^Building /.test(make[2]!)) this.compiled++;
    } else if (ninja) {
      const done = Number(ninja[1]);
      this.total = Number(ninja[2]);
      this.percent = this.total > 0 ? Math.floor((done / this.total) * 100) : null;
      if (/^Building /.test(ninja[3]!)) this.compiled++;
    }
  }
}

export interface LlamaServerBuildOptions {
  /** scripts/build-llama-server.sh */
  script: string;
  outDir: string;
  /** Extra environment (JOBS, NATIVE, CMAKE_EXTRA, FORCE). */
  env?: NodeJS.ProcessEnv;
  /** The script's own lines (waiting, reusing, a missing tool). */
  onMessage?: (line: string) => void;
  onProgress?: (progress: BuildProgress) => void;
  pollMs?: number;
}

export interface LlamaServerBuildResult {
  ok: boolean;
  exitCode: number;
  binary: string | null;
  log: string;
  /** Why it failed, in one line (the script's own message, else the exit status), for skip reasons. */
  reason: string | null;
  /** The log's last lines, for a failure. */
  logTail: string[];
}

export function buildLogPath(outDir: string): string {
  return path.join(outDir, "build.log");
}

export function runLlamaServerBuild(options: LlamaServerBuildOptions): Promise<LlamaServerBuildResult> {
  const log = buildLogPath(options.outDir);
  const started = Date.now();
  let phase: BuildProgress["phase"] = "building";
  let tracker = new BuildLogTracker();
  let offset = 0;
  let seenLog = false;
  let rateFrom: { at: number; percent: number } | null = null;

  const poll = () => {
    let size: number;
    try {
      const stat = statSync(log);
      // a log older than this run is a finished build's: nothing to report from it
      if (stat.mtimeMs < started - 2000) return;
      size = stat.size;
    } catch {
      return;
    }
    // the log is truncated when a build starts (ours after a wait, or a fresh one): start counting again
    if (size < offset || !seenLog) {
      offset = 0;
      tracker = new BuildLogTracker();
      rateFrom = null;
    }
    seenLog = true;
    if (size > offset) {
      const fd = openSync(log, "r");
      try {
        const buffer = Buffer.alloc(Math.min(size - offset, 4 << 20));
        const read = readSync(fd, buffer, 0, buffer.length, offset);
        offset += read;
        const text = buffer.subarray(0, read).toString("utf8");
        tracker.feed(text);
      } finally {
        closeSync(fd);
      }
    }
    if (tracker.percent === null) return;
    const now = Date.now();
    if (!rateFrom) rateFrom = { at: now, percent: tracker.percent };
    const moved = tracker.percent - rateFrom.percent;
    const etaMs = moved > 0 ? ((now - rateFrom.at) / moved) * (100 - tracker.percent) : null;
    options.onProgress?.({ phase, percent: tracker.percent, compiled: tracker.compiled, total: tracker.total, elapsedMs: now - started, etaMs });
  };

  return new Promise((resolve) => {
    const child = spawn("bash", [options.script, options.outDir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env, BUILD_LOG: log },
    });
    let stdout = "";
    let stderrPartial = "";
    // the script's own failure line (a missing tool, a bad folder); cmake's and the compiler's go to the log
    let lastMessage: string | null = null;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => {
      const lines = (stderrPartial + chunk.toString()).split("\n");
      stderrPartial = lines.pop() ?? "";
      for (const line of lines.filter((l) => l.trim())) {
        if (/waiting for another build/.test(line)) phase = "waiting";
        else lastMessage = line;
        options.onMessage?.(line);
      }
    });
    // before the wait ends the log is the other build's; the first poll after our lock reads a truncated file
    const timer = setInterval(poll, options.pollMs ?? 1000);
    const finish = (exitCode: number, spawnError: string | null) => {
      clearInterval(timer);
      if (stderrPartial.trim()) lastMessage = stderrPartial.trim();
      const binary = stdout.trim().split("\n").pop() || null;
      const ok = exitCode === 0 && binary !== null;
      const compileFailed = !ok && spawnError === null && lastMessage === null;
      const logTail = compileFailed ? readTail(log, 40) : [];
      const reason = ok
        ? null
        : (spawnError ?? lastMessage?.replace(/^build-llama-server: /, "") ?? `the build failed (exit status ${exitCode}); its log: ${log}`);
      resolve({ ok, exitCode, binary: ok ? binary : null, log, reason, logTail });
    };
    child.on("error", (error) => finish(127, `cannot run bash: ${error.message}`));
    child.on("close", (code, signal) => {
      poll();
      finish(code ?? (signal ? 128 : 1), null);
    });
  });
}

function readTail(file: string, lines: number): string[] {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines);
  } catch {
    return [];
  }
}
