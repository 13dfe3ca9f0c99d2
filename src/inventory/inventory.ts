/**
 * Every model the server can serve: the ones named in the config, every GGUF under the model folders,
 * and the demo model when there is nothing else. Scans are cheap (directory walks and stats, no file reads)
 * and repeated on demand so a file dropped into a folder shows up without a restart.
 */
import { readdirSync, statSync, type Dirent } from "node:fs";
import path from "node:path";
import type { ServerConfig } from "../config/load.js";
import { keepAliveMs, type ModelType } from "../config/schema.js";
import { LmxError } from "../errors/codes.js";
import { DEMO_MODEL_ID, ensureDemoModel } from "./demo-model.js";
import { resolveRunnerSettings } from "./settings.js";
import type { ModelDescriptor } from "./types.js";

const RESCAN_AFTER_MS = 2_000;
const MAX_SCAN_DEPTH = 8;
/** Files in GGUF folders that are not models one can chat with. */
const NOT_A_MODEL = /(^|[-_.])(mmproj|vocab)([-_.]|$)/i;
const SPLIT_PART = /-(\d{5})-of-(\d{5})\.gguf$/i;

export class Inventory {
  private models: ModelDescriptor[] = [];
  private byId = new Map<string, ModelDescriptor>();
  private scannedAt = 0;
  private demoPath: string | null = null;

  constructor(private readonly config: ServerConfig) {}

  /** Prepares the demo model if it will be needed; call once at start-up. */
  async init(): Promise<void> {
    this.rescan();
    if (this.models.length === 0 && this.config.demo_model) {
      this.demoPath = await ensureDemoModel(this.config.state_dir);
      this.rescan();
    }
  }

  list(): ModelDescriptor[] {
    this.refreshIfStale();
    return this.models;
  }

  resolve(id: string): ModelDescriptor {
    this.refreshIfStale();
    let model = this.byId.get(id);
    if (!model) {
      this.rescan();
      model = this.byId.get(id);
    }
    if (!model) {
      throw new LmxError("model_not_found", `the model '${truncate(id)}' does not exist; GET /v1/models lists the models this server can serve`, {
        param: "model",
      });
    }
    return model;
  }

  private refreshIfStale(): void {
    if (Date.now() - this.scannedAt > RESCAN_AFTER_MS) this.rescan();
  }

  rescan(): void {
    const found: ModelDescriptor[] = [];
    const taken = new Set<string>();
    const add = (m: ModelDescriptor) => {
      const names = [m.id, ...m.aliases];
      if (names.some((n) => taken.has(n))) return;
      names.forEach((n) => taken.add(n));
      found.push(m);
    };
    const configuredPaths = new Set<string>();
    for (const entry of this.config.models) {
      configuredPaths.add(entry.path);
      const size = fileSize(entry.path);
      add({
        id: entry.id,
        aliases: entry.aliases ?? [],
        path: entry.path,
        type: entry.type ?? guessType(entry.path),
        source: "config",
        sizeBytes: size,
        settings: resolveRunnerSettings(entry, this.config.defaults, this.config.gpu, size),
        keepAliveMs: keepAliveMs(entry.keep_alive ?? this.config.keep_alive),
        pinned: entry.pinned ?? false,
      });
    }
    for (const dir of this.config.model_dirs) {
      for (const file of findGgufFiles(dir)) {
        if (configuredPaths.has(file.path)) continue;
        const relative = path.relative(dir, file.path).replace(/\\/g, "/");
        const base = path.basename(file.path).replace(SPLIT_PART, ".gguf").replace(/\.gguf$/i, "");
        const id = taken.has(base) ? relative.replace(SPLIT_PART, ".gguf").replace(/\.gguf$/i, "") : base;
        add({
          id,
          aliases: [],
          path: file.path,
          type: guessType(file.path),
          source: "model_dir",
          sizeBytes: file.size,
          settings: resolveRunnerSettings({}, this.config.defaults, this.config.gpu, file.size),
          keepAliveMs: keepAliveMs(this.config.keep_alive),
          pinned: false,
        });
      }
    }
    if (this.demoPath && found.length === 0) {
      const size = fileSize(this.demoPath);
      add({
        id: DEMO_MODEL_ID,
        aliases: [],
        path: this.demoPath,
        type: "chat",
        source: "demo",
        sizeBytes: size,
        settings: resolveRunnerSettings({}, this.config.defaults, this.config.gpu, size),
        keepAliveMs: keepAliveMs(this.config.keep_alive),
        pinned: false,
      });
    }
    this.models = found;
    this.byId = new Map();
    for (const m of found) for (const n of [m.id, ...m.aliases]) this.byId.set(n, m);
    this.scannedAt = Date.now();
  }
}

function truncate(text: string): string {
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Without reading metadata yet, a name that says "embed" is the best hint; the config can always say. */
function guessType(file: string): ModelType {
  return /embed/i.test(path.basename(file)) ? "embedding" : "chat";
}

function findGgufFiles(root: string): Array<{ path: string; size: number }> {
  const out: Array<{ path: string; size: number }> = [];
  const walk = (dir: string, depth: number) => {
    if (depth > MAX_SCAN_DEPTH) return;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // a missing or unreadable folder is reported by diagnostics, not fatal to serving
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full, depth + 1);
        continue;
      }
      if (!/\.gguf$/i.test(entry.name) || NOT_A_MODEL.test(entry.name)) continue;
      const split = SPLIT_PART.exec(entry.name);
      if (split && split[1] !== "00001") continue;
      try {
        const stat = statSync(full); // follows symlinks, so linked model stores count
        if (stat.isFile()) out.push({ path: full, size: stat.size });
      } catch {
        continue;
      }
    }
  };
  walk(root, 0);
  return out.sort((a, b) => a.path.localeCompare(b.path));
}
