/** What every client command shares: the connection flags, the output streams, and turning errors into exit codes. */
import { InvalidArgumentError, type Command } from "commander";
import { CliError, EXIT } from "./exit.js";
import { colorEnabled, styleFor, type Style } from "./format.js";
import { LmxClient } from "./http.js";
import { withLmxCommand } from "./self-command.js";
import { resolveTarget, type ConnectionOptions } from "./target.js";

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colours for stdout and for stderr: each only when that stream is a terminal. */
  style: Style;
  errStyle: Style;
  stdoutTTY: boolean;
  stderrTTY: boolean;
}

export function processIo(): Io {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    style: styleFor(colorEnabled(process.stdout)),
    errStyle: styleFor(colorEnabled(process.stderr)),
    stdoutTTY: process.stdout.isTTY === true,
    stderrTTY: process.stderr.isTTY === true,
  };
}

export function withConnection(command: Command): Command {
  return command
    .option("--url <url>", "server URL (or LMX_URL; default: host/port from the config, else http://127.0.0.1:1234)")
    .option("--admin-key <key>", "the server's admin_key, for /admin routes (or LMX_ADMIN_KEY)")
    .option("--api-key <key>", "one of the server's api_keys, for /v1 routes (or LMX_API_KEY)")
    .option("-c, --config <file>", "the server's config file, to find its address and keys (or LMX_CONFIG)");
}

export function clientFor(options: ConnectionOptions): LmxClient {
  return new LmxClient(resolveTarget(options));
}

export function printJson(io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`);
}

/** Reports an error on stderr and returns the exit code it stands for. */
export function reportError(error: unknown, io: Io): number {
  const s = io.errStyle;
  if (error instanceof CliError) {
    io.err(`${s.red("lmx:")} ${withLmxCommand(error.message)}\n`);
    if (error.fix) io.err(`${s.dim("  fix:")} ${withLmxCommand(error.fix)}\n`);
    return error.exitCode;
  }
  io.err(`${s.red("lmx: unexpected error:")} ${(error as Error)?.stack ?? String(error)}\n`);
  return EXIT.failed;
}

async function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0) return;
  await new Promise<void>((resolve) => stream.write("", () => resolve()));
}

/**
 * Runs a client command to completion and exits with its code. Exiting explicitly (after stdout and stderr have
 * drained) keeps idle keep-alive sockets or a readline from holding the process open.
 */
export async function run(task: (io: Io) => Promise<number>): Promise<never> {
  const io = processIo();
  let code: number;
  try {
    code = await task(io);
  } catch (error) {
    code = reportError(error, io);
  }
  await flushed(process.stdout);
  await flushed(process.stderr);
  process.exit(code);
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number ≥ 0");
  return n;
}
