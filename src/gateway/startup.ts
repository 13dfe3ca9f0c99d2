/**
 * Start-up failures a person fixes in the configuration (a taken port, a host that is not ours, an unusable
 * log_file or state_dir): one line naming the setting, never a stack trace. `lmx serve` exits 2 on them.
 */
import { findPortHolder } from "../util/port-holder.js";

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/** LM Studio's server listens here too, so a taken 1234 is often LM Studio. */
const LM_STUDIO_PORT = 1234;

export function listenError(error: unknown, host: string, port: number): StartupError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  switch (code) {
    case "EADDRINUSE": {
      const holder = findPortHolder(port);
      const by = holder ? ` by ${holder.command} (pid ${holder.pid})` : " by another program";
      const lmStudio = port === LM_STUDIO_PORT ? " (1234 is also LM Studio's default port)" : "";
      return new StartupError(
        `cannot listen on ${where}: port ${port} is already in use${by}${lmStudio}; stop it or choose another port with --port, port: in the config, or LMX_PORT`,
      );
    }
    case "EADDRNOTAVAIL":
      return new StartupError(
        `cannot listen on ${where}: ${host} is not an address of this machine; set --host, host: or LMX_HOST to 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its addresses`,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
    case "EAI_NONAME":
      return new StartupError(
        `cannot listen on ${where}: the host name ${host} does not resolve; set --host, host: or LMX_HOST to an address of this machine such as 127.0.0.1`,
      );
    case "EACCES":
      return new StartupError(
        `cannot listen on ${where}: no permission (ports below 1024 need root); choose a port above 1023 with --port, port: or LMX_PORT`,
      );
    default:
      return null;
  }
}

export function reasonOf(error: unknown): string {
  const e = error as NodeJS.ErrnoException | null;
  if (e?.code === "ENOTDIR") return "a part of the path is a file, not a folder";
  if (e?.code === "EACCES" || e?.code === "EPERM") return "permission denied";
  if (e?.code === "EROFS") return "read-only file system";
  if (e?.code === "ENOSPC") return "no space left on the device";
  if (e?.code === "ENOENT") return "the file system does not accept new files or folders there (a virtual file system such as /proc or /sys?)";
  return e?.message ?? String(error);
}
