/**
 * Every model on this machine and which of them the server can serve: the config's entries, GGUF folders,
 * the Hugging Face cache, LM Studio's folder and Ollama's store, plus the demo model when nothing else can be
 * served. Scans are directory walks plus cached GGUF header reads, repeated when stale, so a model dropped
 * into a folder (or finished downloading) shows up without a restart.
 */
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ServerConfig } from "../config/load.js";
import { expandHome } from "../config/load.js";
import { keepAliveMs, type ModelEntryInput } from "../config/schema.js";
import { LmxError } from "../errors/codes.js";
import { ModelFolders, OUTSIDE_FOLDERS } from "./confine.js";
import { DEMO_MODEL_ID, ensureDemoModel } from "./demo-model.js";
import { inspectGguf, type GgufFacts } from "./gguf-inspect.js";
import { resolveLoadSettings, type ResolvedLoadSettings } from "../tuning/precedence.js";
import { presetNamed } from "../tuning/presets.js";
import type { RunnerSettingsInput } from "../config/schema.js";
import { scanGgufFolder } from "./sources/gguf-folders.js";
import { defaultHfCacheDir, scanHfCache } from "./sources/hf-cache.js";
import { defaultOllamaDir, scanOllama } from "./sources/ollama.js";
import type { DiscoveredModel } from "./sources/types.js";
import type { ModelDescriptor } from "./types.js";

const RESCAN_AFTER_MS = 2_000;

export class Inventory {
  private all: ModelDescriptor[] = [];
  private byId = new Map<string, ModelDescriptor>();
  private scannedAt = 0;
  private scanning: Promise<void> | null = null;
  private rescan: Promise<void> | null = null;
  private demoPath: string | null = null;
  /** Why the demo model could not be written, if it could not. */
  demoError: string | null = null;

  /**
   * @param opens whether some backend here can open a model (the backends decide; the inventory reports files
   *   and facts). What clients may ask for is what is complete and opened by one of them.
   */
  /** A model's current tuned profile (autotune), or null; set once profiles are available. */
  private tuned: ((model: ModelDescriptor) => { id: number; settings: RunnerSettingsInput } | null) | null = null;

  constructor(
    private readonly config: ServerConfig,
    private readonly opens: (model: ModelDescriptor) => boolean,
  ) {}

  /** Loads use the model's tuned profile from now on (below explicit load settings, above presets). */
  useTunedProfiles(lookup: (model: ModelDescriptor) => { id: number; settings: RunnerSettingsInput } | null): void {
    this.tuned = lookup;
  }

  /**
   * A model's settings through every layer (src/tuning/precedence.ts): explicit load settings, its tuned
   * profile, a preset (the load's, else its entry's), its config entry, the server defaults.
   */
  settingsFor(
    model: Pick<ModelDescriptor, "id" | "sizeBytes" | "source">,
    options: { explicit?: RunnerSettingsInput; preset?: string; tuned?: boolean } = {},
  ): ResolvedLoadSettings {
    const entry = model.source === "config" ? (this.config.models.find((m) => m.id === model.id) ?? null) : null;
    const presetName = options.preset ?? entry?.preset;
    const preset = presetName === undefined ? null : presetNamed(this.config.presets, presetName, options.preset ? "preset" : "models[].preset");
    const descriptor = this.byId.get(model.id);
    const tuned = options.tuned === false || !this.tuned || !descriptor ? null : this.tuned(descriptor);
    return resolveLoadSettings(
      {
        ...(options.explicit ? { explicit: options.explicit } : {}),
        tuned,
        preset: preset ? { name: preset.name, settings: preset.settings } : null,
        model: entry ?? {},
        defaults: this.config.defaults,
      },
      this.config.gpu,
      model.sizeBytes,
    );
  }

  /** First scan; prepares the demo model if nothing else can be served. */
  async init(): Promise<void> {
    await this.refresh();
    if (this.servable().length === 0 && this.config.demo_model) {
      try {
        this.demoPath = await ensureDemoModel(this.config.state_dir);
      } catch (error) {
        // a full or read-only state volume costs the demo model, not the server
        this.demoError = (error as Error).message;
      }
      await this.refresh();
    }
  }

  /** The HF cache folder discovery reads, if that source is on: downloads go there so they show up at once. */
  hfCacheDir(): string | null {
    return this.discoveryDirs().hf_cache;
  }

  /** Where discovery looks, for diagnostics and for empty-inventory messages. */
  locations(): Array<{ source: string; path: string; exists: boolean }> {
    const out = this.config.model_dirs.map((p) => ({ source: "model_dir", path: p }));
    for (const [source, p] of Object.entries(this.discoveryDirs())) if (p) out.push({ source, path: p });
    return out.map((l) => ({ ...l, exists: existsSync(l.path) }));
  }

  /** Everything on disk, servable or not. */
  async available(): Promise<ModelDescriptor[]> {
    await this.fresh();
    return this.all;
  }

  /** What clients can ask for: complete models in a format a backend here opens. */
  async list(): Promise<ModelDescriptor[]> {
    await this.fresh();
    return this.servable();
  }

  /**
   * A model by id or alias, ready to load; a clear error when it cannot be served as it is. Answers from the
   * last scan: generation requests never wait for a walk of every model store (a stale scan is refreshed in
   * the background), except when the id is unknown, which is worth one fresh look.
   */
  async resolve(id: string): Promise<ModelDescriptor> {
    if (this.scannedAt === 0) await this.refresh();
    else if (!this.scanning && Date.now() - this.scannedAt > RESCAN_AFTER_MS) void this.refresh().catch(() => {});
    let model = this.byId.get(id);
    if (!model) {
      await this.refresh();
      model = this.byId.get(id);
    }
    if (!model) {
      throw new LmxError("model_not_found", `the model '${truncate(id)}' does not exist; GET /v1/models lists the models this server can serve`, {
        param: "model",
      });
    }
    if (!this.tuned) return model;
    // a profile applied since the scan counts at the next load, whoever starts it (a request or an operator)
    const resolved = this.settingsFor(model);
    return { ...model, settings: resolved.settings, settingsSource: resolved.sources };
  }

  /** A model by id or alias from the last scan, without waiting for one (routing to remote nodes asks first). */
  peek(id: string): ModelDescriptor | null {
    return this.byId.get(id) ?? null;
  }

  /**
   * A servable local GGUF of the same model as an MLX/safetensors repo (gguf_fallback_enabled): names are
   * compared after dropping the owner and packaging words (mlx, gguf, 4bit, quantization tags), so
   * `mlx-community/Qwen2.5-7B-Instruct-4bit` finds `bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M`.
   */
  ggufEquivalent(model: ModelDescriptor): ModelDescriptor | null {
    const wanted = baseModelName(model.id);
    if (!wanted) return null;
    const matches = this.servable().filter((m) => m.id !== model.id && baseModelName(m.id.split(":")[0] ?? m.id) === wanted);
    // prefer the quantization closest to what MLX repos usually carry (4-bit), then the smallest file
    return matches.sort((a, b) => quantRank(a.quantization) - quantRank(b.quantization) || a.sizeBytes - b.sizeBytes)[0] ?? null;
  }

  private servable(): ModelDescriptor[] {
    return this.all.filter((m) => m.missing.length === 0 && m.problem === null && this.opens(m));
  }

  private async fresh(): Promise<void> {
    if (this.scanning) await this.scanning;
    else if (Date.now() - this.scannedAt > RESCAN_AFTER_MS) await this.refresh();
  }

  /**
   * A new scan. One already running may have passed the folder that just changed (a finished download), so it is
   * not enough: one more runs after it, shared by every caller meanwhile.
   */
  refresh(): Promise<void> {
    if (this.scanning) {
      this.rescan ??= this.scanning
        .catch(() => undefined)
        .then(() => {
          this.rescan = null;
          return this.refresh();
        });
      return this.rescan;
    }
    this.scanning = this.scan().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  private discoveryDirs(): { hf_cache: string | null; lmstudio: string | null; ollama: string | null } {
    const { discovery } = this.config;
    const pick = (value: "auto" | false | string, auto: () => string) => (value === false ? null : expandHome(value === "auto" ? auto() : value));
    return {
      hf_cache: pick(discovery.hf_cache, () => defaultHfCacheDir()),
      lmstudio: pick(discovery.lmstudio, () => {
        const current = path.join(os.homedir(), ".lmstudio", "models");
        const legacy = path.join(os.homedir(), ".cache", "lm-studio", "models");
        return existsSync(current) || !existsSync(legacy) ? current : legacy;
      }),
      ollama: pick(discovery.ollama, () => defaultOllamaDir()),
    };
  }

  private async scan(): Promise<void> {
    const found: ModelDescriptor[] = [];
    const taken = new Set<string>();
    const configuredPaths = new Set(this.config.models.map((m) => m.path));
    const add = async (discovered: DiscoveredModel, entry: ModelEntryInput | null) => {
      // first come keeps a name: config entries, then folders, then other tools' stores
      if (taken.has(discovered.id)) return;
      const aliases = discovered.aliases.filter((a) => !taken.has(a) && a !== discovered.id);
      for (const n of [discovered.id, ...aliases]) taken.add(n);
      found.push(await this.describe({ ...discovered, aliases }, entry));
    };
    for (const entry of this.config.models) {
      await add(
        {
          id: entry.id,
          aliases: entry.aliases ?? [],
          path: entry.path,
          localPath: path.dirname(entry.path),
          source: "config",
          format: /\.gguf$/i.test(entry.path) ? "gguf" : "unknown",
          sizeBytes: fileSize(entry.path),
          missing: existsSync(entry.path) ? [] : [entry.path],
        },
        entry,
      );
    }
    const dirs = this.discoveryDirs();
    const discovered: DiscoveredModel[] = [
      ...this.config.model_dirs.flatMap((dir) => scanGgufFolder(dir, "model_dir")),
      ...(dirs.hf_cache ? scanHfCache(dirs.hf_cache) : []),
      ...(dirs.lmstudio ? scanGgufFolder(dirs.lmstudio, "lmstudio", "lmstudio:") : []),
      ...(dirs.ollama ? scanOllama(dirs.ollama) : []),
    ];
    const folders = this.folders();
    for (const model of discovered) {
      if (configuredPaths.has(model.path)) continue;
      // a refused link is listed with its reason, never inspected (no byte of its target is read) and sized 0
      await add(folders.containsModel(model.path) ? model : { ...model, sizeBytes: 0, missing: [], problem: OUTSIDE_FOLDERS }, null);
    }
    const anyServable = found.some((m) => m.format === "gguf" && m.missing.length === 0 && m.problem === null);
    if (this.demoPath && !anyServable) {
      await add(
        {
          id: DEMO_MODEL_ID,
          aliases: [],
          path: this.demoPath,
          localPath: path.dirname(this.demoPath),
          source: "demo",
          format: "gguf",
          sizeBytes: fileSize(this.demoPath),
          missing: [],
        },
        null,
      );
    }
    this.all = found;
    this.byId = new Map();
    for (const m of found) for (const n of [m.id, ...m.aliases]) this.byId.set(n, m);
    this.scannedAt = Date.now();
  }

  /** The folders models are served from: the configured ones and the discovered stores; config entries name their own files. */
  private folders(): ModelFolders {
    const dirs = this.discoveryDirs();
    return new ModelFolders([...this.config.model_dirs, dirs.hf_cache, this.config.downloads.cache_dir, dirs.lmstudio, dirs.ollama]);
  }

  /**
   * Whether a file a request names (a draft model) may be opened: inside the model folders, or a file the
   * config names itself.
   */
  servesFile(file: string): boolean {
    const configured = this.config.models.flatMap((m) => [m.path, ...(m.draft_model ? [m.draft_model] : [])]);
    if (this.config.defaults.draft_model) configured.push(this.config.defaults.draft_model);
    return configured.includes(file) || this.folders().containsModel(file);
  }

  private scannedSettings(entry: ModelEntryInput | null, size: number): Pick<ModelDescriptor, "settings" | "settingsSource"> {
    const preset = entry?.preset === undefined ? null : presetNamed(this.config.presets, entry.preset, "models[].preset");
    const resolved = resolveLoadSettings(
      { preset: preset ? { name: preset.name, settings: preset.settings } : null, model: entry ?? {}, defaults: this.config.defaults },
      this.config.gpu,
      size,
    );
    return { settings: resolved.settings, settingsSource: resolved.sources };
  }

  private async describe(model: DiscoveredModel, entry: ModelEntryInput | null): Promise<ModelDescriptor> {
    let facts: GgufFacts | null = null;
    if (model.format === "gguf" && model.missing.length === 0 && !model.problem && isRegularFile(model.path)) facts = await inspectGguf(model.path);
    const size = model.sizeBytes;
    return {
      id: model.id,
      aliases: model.aliases,
      path: model.path,
      localPath: model.localPath,
      type: entry?.type ?? facts?.type ?? "chat",
      source: model.source,
      sizeBytes: size,
      ...this.scannedSettings(entry, size),
      keepAliveMs: keepAliveMs(entry?.keep_alive ?? this.config.keep_alive),
      pinned: entry?.pinned ?? false,
      loaderTimeoutMs: entry?.loader_timeout_sec !== undefined ? entry.loader_timeout_sec * 1000 : null,
      format: model.format,
      architecture: facts?.architecture ?? null,
      parameterCount: facts?.parameterCount ?? null,
      quantization: facts?.quantization ?? null,
      contextLength: facts?.contextLength ?? null,
      missing: model.missing,
      problem: model.problem ?? facts?.problem ?? null,
    };
  }
}

/** Why a known model cannot be loaded as it is, as the error a request or a load gets; null if it can. */
/** What is wrong with a model's files as they are on disk, if anything (which backend opens them is not asked here). */
export function fileProblem(model: ModelDescriptor): LmxError | null {
  if (model.missing.length > 0) {
    return new LmxError(
      "download_required",
      `model '${model.id}' is incomplete on disk; missing: ${model.missing.slice(0, 5).join(", ")}${model.missing.length > 5 ? ", …" : ""}`,
      {
        param: "model",
        details: { missing: model.missing },
      },
    );
  }
  if (model.problem) return new LmxError("model_file_invalid", `cannot load ${model.path}: ${model.problem}`, { param: "model" });
  return null;
}

/** The model a repo packages, without owner, format and quantization words. */
export function baseModelName(id: string): string {
  const name = (id.split("/").pop() ?? id).toLowerCase().replace(/[-_.](i?q\d(_[a-z0-9]+)*|bf16|fp16|f16|f32)(?=$|[-_.])/g, "");
  return name
    .split(/[-_.]/)
    .filter((part) => part && !/^(mlx|gguf|ggml|\d+bit|bf16|fp16|f16|f32|i?q\d(_?[a-z0-9]+)*|quantized|awq|gptq)$/.test(part))
    .join("-");
}

function quantRank(quantization: string | null): number {
  if (!quantization) return 50;
  const bits = /Q(\d)/i.exec(quantization)?.[1];
  return bits ? Math.abs(Number(bits) - 4) : 40;
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

/** Only regular files are read: opening a FIFO or a device to read a header would block. */
function isRegularFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
