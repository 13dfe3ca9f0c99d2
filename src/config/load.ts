import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { configSchema, type ParsedConfig } from "./schema.js";
import { presetNames } from "../tuning/presets.js";

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface ServerConfig extends ParsedConfig {
  state_dir: string;
  /** The file the config came from, if any: relative paths in it are resolved against its folder. */
  config_path: string | null;
}

type Env = Record<string, string | undefined>;

/** Environment variables override the file; each maps to one top-level key. */
const ENV_OVERRIDES: ReadonlyArray<{ name: string; key: string; parse: (raw: string) => unknown }> = [
  { name: "LMX_HOST", key: "host", parse: (v) => v },
  { name: "LMX_PORT", key: "port", parse: Number },
  { name: "LMX_STATE_DIR", key: "state_dir", parse: (v) => v },
  { name: "LMX_MODEL_DIRS", key: "model_dirs", parse: (v) => v.split(path.delimiter).filter(Boolean) },
  {
    name: "LMX_AUTO_LOAD",
    key: "auto_load",
    parse: (v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
  },
  { name: "LMX_JIT_LOAD", key: "jit_load", parse: parseBool },
  { name: "LMX_DEMO_MODEL", key: "demo_model", parse: parseBool },
  { name: "LMX_GPU", key: "gpu", parse: (v) => v },
  { name: "LMX_MAX_CONCURRENT_REQUESTS", key: "max_concurrent_requests", parse: Number },
  { name: "LMX_QUEUE_SIZE", key: "queue_size", parse: Number },
  { name: "LMX_QUEUE_TIMEOUT_SEC", key: "queue_timeout_sec", parse: Number },
  { name: "LMX_LOADER_TIMEOUT_SEC", key: "loader_timeout_sec", parse: Number },
  { name: "LMX_ADMIN_KEY", key: "admin_key", parse: (v) => v },
  {
    name: "LMX_API_KEYS",
    key: "api_keys",
    parse: (v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
  },
  {
    name: "LMX_ALLOWED_HOSTS",
    key: "allowed_hosts",
    parse: (v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
  },
  {
    name: "LMX_CORS_ORIGINS",
    key: "cors_origins",
    parse: (v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
  },
  { name: "LOGLEVEL", key: "log_level", parse: (v) => v.toLowerCase() },
  { name: "LMX_LOG_LEVEL", key: "log_level", parse: (v) => v.toLowerCase() },
  { name: "LMX_LOG_FILE", key: "log_file", parse: (v) => v },
];

function parseBool(raw: string): unknown {
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  return raw; // left as a string so validation names the variable's value as wrong
}

export function expandHome(p: string): string {
  if (p === "~") return os.homedir();
  if (p.startsWith("~/")) return path.join(os.homedir(), p.slice(2));
  return p;
}

export function defaultStateDir(env: Env = process.env): string {
  const xdg = env["XDG_DATA_HOME"];
  return path.join(xdg ? xdg : path.join(os.homedir(), ".local", "share"), "opta-lmx");
}

export interface LoadConfigOptions {
  configPath?: string | undefined;
  env?: Env;
  /** Flags from the command line: they win over file and environment. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(options: LoadConfigOptions = {}): ServerConfig {
  const env = options.env ?? process.env;
  const configPath = options.configPath ?? env["LMX_CONFIG"] ?? null;
  let raw: Record<string, unknown> = {};
  if (configPath) {
    let text: string;
    try {
      text = readFileSync(configPath, "utf8");
    } catch (error) {
      throw new ConfigError(`cannot read config file ${configPath}: ${(error as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`config file ${configPath} is not valid YAML: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new ConfigError(`config file ${configPath} must be a YAML mapping of settings`);
      }
      raw = parsed as Record<string, unknown>;
    }
  }
  const fromEnv: string[] = [];
  for (const { name, key, parse } of ENV_OVERRIDES) {
    const value = env[name];
    if (value !== undefined && value !== "") {
      raw[key] = parse(value);
      fromEnv.push(`${name} → ${key}`);
    }
  }
  // the hub's own variables, so an existing huggingface_hub setup works unchanged
  for (const [name, key] of [
    ["HF_ENDPOINT", "hub_url"],
    ["HF_TOKEN", "token"],
  ] as const) {
    const value = env[name];
    if (value) {
      const downloads = typeof raw["downloads"] === "object" && raw["downloads"] !== null ? (raw["downloads"] as Record<string, unknown>) : {};
      raw["downloads"] = { ...downloads, [key]: value };
    }
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) raw[key] = value;
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const where = configPath ? ` (file ${configPath}${fromEnv.length ? `; environment ${fromEnv.join(", ")}` : ""})` : "";
    throw new ConfigError(`invalid configuration${where}:\n${z.prettifyError(result.error)}`);
  }
  const base = configPath ? path.dirname(path.resolve(configPath)) : process.cwd();
  const resolvePath = (p: string) => path.resolve(base, expandHome(p));
  const config = result.data;
  const ids = new Set<string>();
  for (const model of config.models) {
    for (const id of [model.id, ...(model.aliases ?? [])]) {
      if (ids.has(id)) throw new ConfigError(`invalid configuration: model id or alias "${id}" is used twice`);
      ids.add(id);
    }
  }
  for (const model of config.models) {
    if (model.preset !== undefined && !presetNames(config.presets).includes(model.preset)) {
      throw new ConfigError(
        `invalid configuration: model "${model.id}" names preset "${model.preset}"; known: ${presetNames(config.presets).join(", ")}`,
      );
    }
  }
  return {
    ...config,
    state_dir: resolvePath(config.state_dir ?? defaultStateDir(env)),
    model_dirs: config.model_dirs.map(resolvePath),
    models: config.models.map((m) => ({ ...m, path: resolvePath(m.path), ...(m.draft_model ? { draft_model: resolvePath(m.draft_model) } : {}) })),
    defaults: { ...config.defaults, ...(config.defaults.draft_model ? { draft_model: resolvePath(config.defaults.draft_model) } : {}) },
    log_file: config.log_file ? resolvePath(config.log_file) : null,
    downloads: { ...config.downloads, cache_dir: config.downloads.cache_dir ? resolvePath(config.downloads.cache_dir) : null },
    skills: {
      ...config.skills,
      files: { ...config.skills.files, roots: config.skills.files.roots.map(resolvePath) },
      folders: config.skills.folders.map(resolvePath),
      commands: config.skills.commands.map((c) => (c.cwd ? { ...c, cwd: resolvePath(c.cwd) } : c)),
    },
    config_path: configPath ? path.resolve(configPath) : null,
  };
}
