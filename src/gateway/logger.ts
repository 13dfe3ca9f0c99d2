import { closeSync, openSync, unlinkSync } from "node:fs";
import { once } from "node:events";
import path from "node:path";
import pino, { type Logger } from "pino";
import pinoRoll from "pino-roll";
import { makeDirSync } from "../util/make-dir.js";
import { reasonOf, StartupError } from "./startup.js";

export interface LogFileOptions {
  file: string;
  /** Size at which the file rolls over: a number with k, m or g. */
  rotateSize: string;
  /** Rolled files kept besides the active one. */
  keep: number;
}

/**
 * JSON logs on stdout and, when a log file is configured, in size-rotated files (`name.1.log`, `name.2.log`, … with
 * `current.log` linking the active one), so a long-running server cannot fill its disk with logs.
 * A log file that cannot be written is a StartupError naming log_file.
 */
export async function createLogger(level: string, file: LogFileOptions | null): Promise<Logger> {
  if (!file) return pino({ level });
  const unusable = (error: unknown) =>
    new StartupError(`log_file ${file.file} cannot be written: ${reasonOf(error)}; change or remove log_file (or LMX_LOG_FILE)`);
  // pino-roll opens its file asynchronously and reports failures as an 'error' event nobody could catch yet:
  // prove the folder takes a file first
  const dir = path.dirname(path.resolve(file.file));
  try {
    makeDirSync(dir);
    const probe = path.join(dir, `.lmx-log-probe-${process.pid}`);
    closeSync(openSync(probe, "w"));
    unlinkSync(probe);
  } catch (error) {
    throw unusable(error);
  }
  let rolling;
  try {
    rolling = await pinoRoll({
      file: file.file.replace(/\.log$/, ""),
      extension: ".log",
      size: file.rotateSize,
      limit: { count: file.keep },
      mkdir: false,
      symlink: true,
    });
    if (rolling.fd < 0) await once(rolling, "ready");
  } catch (error) {
    throw unusable(error);
  }
  return pino(
    { level },
    pino.multistream([
      { stream: process.stdout, level: level as pino.Level },
      { stream: rolling, level: level as pino.Level },
    ]),
  );
}
