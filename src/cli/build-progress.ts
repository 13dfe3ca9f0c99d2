/**
 * llama-server build progress for people: one redrawn line on a terminal, a plain line every `intervalMs`
 * elsewhere (CI logs, pipes), so a 10-minute build is never 10 minutes of silence.
 */
import type { BuildProgress } from "../engines/llama-server/build.js";
import { formatDuration } from "./format.js";

/** `llama-server: compiling 42% (118 files), 3m10s elapsed, about 4m20s left` */
export function buildProgressLine(p: BuildProgress): string {
  const files = p.total !== null ? `${p.compiled} of ${p.total} steps` : `${p.compiled} files`;
  const what = p.phase === "waiting" ? "waiting for another process's build:" : "compiling";
  const eta = p.etaMs !== null ? `, about ${formatDuration(p.etaMs / 1000)} left` : "";
  return `llama-server: ${what} ${p.percent ?? 0}% (${files}), ${formatDuration(p.elapsedMs / 1000)} elapsed${eta}`;
}

export interface BuildProgressPrinter {
  progress(p: BuildProgress): void;
  /** A line from the build script; on a terminal it ends the redrawn line first. */
  message(line: string): void;
  /** Ends the redrawn line. */
  done(): void;
}

export function buildProgressPrinter(write: (text: string) => void, tty: boolean, intervalMs = 30_000): BuildProgressPrinter {
  let drawn = false;
  let lastPrinted = -Infinity;
  const endLine = () => {
    if (drawn) write("\n");
    drawn = false;
  };
  return {
    progress(p) {
      if (tty) {
        write(`\r\x1b[2K${buildProgressLine(p)}`);
        drawn = true;
      } else if (p.elapsedMs - lastPrinted >= intervalMs) {
        lastPrinted = p.elapsedMs;
        write(`${buildProgressLine(p)}\n`);
      }
    },
    message(line) {
      endLine();
      write(`${line}\n`);
    },
    done: endLine,
  };
}
