/**
 * Which server a client command talks to, and with which keys: flags, then environment, then the server's own
 * config file (so `lmx status` on the server's machine needs no flags), then http://127.0.0.1:1234. Each value
 * remembers where it came from, because "which key did you send?" is the first question when a 401 comes back.
 */
import { ConfigError, loadConfig, type ServerConfig } from "../config/load.js";
import { usageError } from "./exit.js";

export interface ConnectionOptions {
  url?: string;
  adminKey?: string;
  apiKey?: string;
  config?: string;
}

export interface Target {
  /** Base URL without a trailing slash or /v1. */
  url: string;
  adminKey: string | null;
  apiKey: string | null;
  from: { url: string; adminKey: string | null; apiKey: string | null };
}

export const DEFAULT_URL = "http://127.0.0.1:1234";

type ConfigLoader = (options: { configPath?: string | undefined; env?: Record<string, string | undefined> }) => ServerConfig;

/** `http://host:1234/v1/` and `host:1234` both mean the server at http://host:1234. */
export function normalizeUrl(raw: string, origin: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw usageError(`${origin} '${raw}' is not a URL`, "use the form http://host:port");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw usageError(`${origin} '${raw}' must be an http:// or https:// URL`);
  const pathname = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.protocol}//${url.host}${pathname}`;
}

/** A server bound to every interface is reached on loopback from its own machine. */
export function urlForListenAddress(host: string, port: number): string {
  const reachable = host === "0.0.0.0" ? "127.0.0.1" : host === "::" || host === "[::]" ? "::1" : host;
  return `http://${reachable.includes(":") && !reachable.startsWith("[") ? `[${reachable}]` : reachable}:${port}`;
}

function nonEmpty(value: string | undefined): string | null {
  return value !== undefined && value !== "" ? value : null;
}

export function resolveTarget(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env, load: ConfigLoader = loadConfig): Target {
  let url: { value: string; from: string } | null = null;
  const flagUrl = nonEmpty(options.url);
  const envUrl = nonEmpty(env["LMX_URL"]);
  if (flagUrl) url = { value: normalizeUrl(flagUrl, "--url"), from: "--url" };
  else if (envUrl) url = { value: normalizeUrl(envUrl, "LMX_URL"), from: "LMX_URL" };

  let adminKey: { value: string; from: string } | null = null;
  const flagAdmin = nonEmpty(options.adminKey);
  const envAdmin = nonEmpty(env["LMX_ADMIN_KEY"]);
  if (flagAdmin) adminKey = { value: flagAdmin, from: "--admin-key" };
  else if (envAdmin) adminKey = { value: envAdmin, from: "LMX_ADMIN_KEY" };

  let apiKey: { value: string; from: string } | null = null;
  const flagApi = nonEmpty(options.apiKey);
  const envApi = nonEmpty(env["LMX_API_KEY"]);
  if (flagApi) apiKey = { value: flagApi, from: "--api-key" };
  else if (envApi) apiKey = { value: envApi, from: "LMX_API_KEY" };

  const configPath = nonEmpty(options.config) ?? nonEmpty(env["LMX_CONFIG"]);
  // The config file is read only for what flags and environment left open; without one, the server's
  // defaults and its LMX_HOST/LMX_PORT/LMX_API_KEYS environment still say where it is.
  if (!url || !adminKey || !apiKey) {
    let config: ServerConfig;
    try {
      config = load({ configPath: configPath ?? undefined, env });
    } catch (error) {
      if (error instanceof ConfigError) throw usageError(error.message, "fix the config file, or pass --url (and keys) explicitly");
      throw error;
    }
    if (!url) {
      const listen = urlForListenAddress(config.host, config.port);
      if (configPath) url = { value: listen, from: `config ${configPath}` };
      else if (nonEmpty(env["LMX_HOST"]) || nonEmpty(env["LMX_PORT"])) url = { value: listen, from: "LMX_HOST/LMX_PORT" };
      else url = { value: DEFAULT_URL, from: "default" };
    }
    if (!adminKey && config.admin_key) adminKey = { value: config.admin_key, from: configPath ? `admin_key in ${configPath}` : "LMX_ADMIN_KEY" };
    if (!apiKey && config.api_keys[0]) apiKey = { value: config.api_keys[0], from: configPath ? `api_keys in ${configPath}` : "LMX_API_KEYS" };
  }
  return {
    url: url.value,
    adminKey: adminKey?.value ?? null,
    apiKey: apiKey?.value ?? null,
    from: { url: url.from, adminKey: adminKey?.from ?? null, apiKey: apiKey?.from ?? null },
  };
}
