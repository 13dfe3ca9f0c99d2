import pino, { type Logger } from "pino";

export function createLogger(level: string, file: string | null): Logger {
  if (!file) return pino({ level });
  const streams = [{ stream: process.stdout }, { stream: pino.destination({ dest: file, mkdir: true, sync: false }) }];
  return pino({ level }, pino.multistream(streams));
}
