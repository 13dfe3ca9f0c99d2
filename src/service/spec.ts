/**
 * What a service definition says, independent of the service manager: which node runs which `lmx serve`, with
 * which config, environment, working folder and logs. systemd.ts and launchd.ts render it; plan.ts says
 * which files and commands install it.
 */
import os from "node:os";
import path from "node:path";

export type ServiceScope = "user" | "system";
export type ServicePlatform = "linux" | "darwin";

export const SYSTEMD_UNIT_NAME = "opta-lmx.service";
export const LAUNCHD_LABEL = "ai.opta.lmx";

export interface ServiceSpec {
  platform: ServicePlatform;
  scope: ServiceScope;
  /** Absolute path of the node binary (services get a minimal PATH, so nothing is looked up). */
  nodePath: string;
  /** Absolute path of dist/src/cli/main.js. */
  cliPath: string;
  /** Absolute config path passed as --config (and LMX_CONFIG); null runs on defaults and environment. */
  configPath: string | null;
  workingDirectory: string;
  environment: Record<string, string>;
  /** Folder for lmx.out.log / lmx.err.log; null = the journal (systemd only). */
  logDir: string | null;
  /** Linux system services: the account the server runs as; null = root. */
  user: string | null;
  /** How long the manager waits after SIGTERM before SIGKILL: the server's drain time plus a margin. */
  stopTimeoutSec: number;
  /** Home folder of the installing user, for user-scope paths. */
  homeDir: string;
  /** XDG_CONFIG_HOME, where systemd looks for user units. */
  xdgConfigHome: string | null;
}

export interface ServiceSpecInput {
  platform: ServicePlatform;
  scope: ServiceScope;
  nodePath: string;
  cliPath: string;
  configPath?: string | null;
  environment?: Record<string, string>;
  logDir?: string | null;
  user?: string | null;
  shutdownTimeoutSec?: number;
  homeDir?: string;
  xdgConfigHome?: string | null;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class ServiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ServiceError";
  }
}

function assertAbsolute(label: string, value: string): void {
  if (!path.isAbsolute(value)) throw new ServiceError(`${label} must be an absolute path: ${value}`);
  // service files are line-based: a newline in a value would start a new setting
  if (/[\n\r\0]/.test(value)) throw new ServiceError(`${label} contains a line break or NUL: ${JSON.stringify(value)}`);
}

export function buildServiceSpec(input: ServiceSpecInput): ServiceSpec {
  const homeDir = input.homeDir ?? os.homedir();
  const configPath = input.configPath ?? null;
  assertAbsolute("the node path", input.nodePath);
  assertAbsolute("the lmx path", input.cliPath);
  if (configPath) assertAbsolute("--config", configPath);
  const environment: Record<string, string> = { NODE_ENV: "production", ...(configPath ? { LMX_CONFIG: configPath } : {}), ...input.environment };
  for (const [name, value] of Object.entries(environment)) {
    if (!ENV_NAME.test(name)) throw new ServiceError(`'${name}' is not a valid environment variable name`);
    if (/[\n\r\0]/.test(value)) throw new ServiceError(`the value of ${name} contains a line break or NUL`);
  }
  const defaultLogDir =
    input.platform === "darwin" ? (input.scope === "user" ? path.join(homeDir, "Library", "Logs", "opta-lmx") : "/Library/Logs/opta-lmx") : null;
  const logDir = input.logDir === undefined || input.logDir === null ? defaultLogDir : input.logDir;
  if (logDir) assertAbsolute("the log folder", logDir);
  const workingDirectory = configPath ? path.dirname(configPath) : homeDir;
  return {
    platform: input.platform,
    scope: input.scope,
    nodePath: input.nodePath,
    cliPath: input.cliPath,
    configPath,
    workingDirectory,
    environment,
    logDir,
    user: input.scope === "system" && input.platform === "linux" ? (input.user ?? null) : null,
    stopTimeoutSec: Math.ceil((input.shutdownTimeoutSec ?? 30) + 10),
    homeDir,
    xdgConfigHome: input.xdgConfigHome ?? null,
  };
}

/** The server's command line, one argument per element. */
export function programArguments(spec: ServiceSpec): string[] {
  return [spec.nodePath, spec.cliPath, "serve", ...(spec.configPath ? ["--config", spec.configPath] : [])];
}

export function serviceFilePath(spec: ServiceSpec): string {
  if (spec.platform === "darwin") {
    return spec.scope === "user"
      ? path.join(spec.homeDir, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`)
      : `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
  }
  if (spec.scope === "system") return `/etc/systemd/system/${SYSTEMD_UNIT_NAME}`;
  return path.join(spec.xdgConfigHome ?? path.join(spec.homeDir, ".config"), "systemd", "user", SYSTEMD_UNIT_NAME);
}

export function logFiles(spec: ServiceSpec): { out: string; err: string } | null {
  return spec.logDir ? { out: path.join(spec.logDir, "lmx.out.log"), err: path.join(spec.logDir, "lmx.err.log") } : null;
}
