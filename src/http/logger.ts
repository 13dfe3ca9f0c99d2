import pino, { type Logger } from "pino";
import pinoRoll from "pino-roll";

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
 */
export async function createLogger(level: string, file: LogFileOptions | null): Promise<Logger> {
  if (!file) return pino({ level });
  const rolling = await pinoRoll({
    file: file.file.replace(/\.log$/, ""),
    extension: ".log",
    size: file.rotateSize,
    limit: { count: file.keep },
    mkdir: true,
    symlink: true,
  });
  return pino({ level }, pino.multistream([{ stream: process.stdout, level: level as pino.Level }, { stream: rolling, level: level as pino.Level }]));
}
