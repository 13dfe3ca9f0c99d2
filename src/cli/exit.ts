/**
 * Exit codes of `lmx` (documented in docs/cli.md) and the one error type commands throw to pick one: scripts
 * tell "the server said no" from "there is no server" from "wrong key" without parsing text.
 */
export const EXIT = {
  ok: 0,
  /** The server answered with an error (or a check/probe/download failed). */
  failed: 1,
  /** Bad flags, arguments or configuration. */
  usage: 2,
  /** Nothing answered at the server's address. */
  unreachable: 3,
  /** The server refused the admin or API key. */
  auth: 4,
  /** Interrupted with Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** One line telling the user what to change. */
    readonly fix: string | null = null,
    /** The server's error code, when the server answered with one. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export const usageError = (message: string, fix: string | null = null) => new CliError(message, EXIT.usage, fix);
