/** `lmx models`: what is on disk and what is loaded, in one table (GET /admin/models/available + /loaded). */
import type { Command } from "commander";
import type { AvailableList, AvailableModel, LoadedList, LoadedModel, ModelLocation } from "../api-types.js";
import { clientFor, printJson, run, withConnection, type Io } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { formatBytes, renderTable, type Column, type Style } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface ModelsOptions extends ConnectionOptions {
  json?: boolean;
}

export interface ModelRow {
  id: string;
  type: string | null;
  format: string | null;
  size_bytes: number | null;
  quantization: string | null;
  /** loaded | loading | available | incomplete | invalid | unsupported | quarantined */
  status: string;
  backend: string | null;
  /** What the runner counts against the memory budget (model + context + runner overhead). */
  memory_bytes: number | null;
  source: string | null;
  /** Why an unavailable model cannot be served, and how to fix it. */
  note: string | null;
  available: AvailableModel | null;
  runner: LoadedModel | null;
}

function statusOf(m: AvailableModel): { status: string; note: string | null } {
  if (m.quarantined) return { status: "quarantined", note: "loads are refused after repeated failures: see `lmx status` and docs/reliability.md" };
  if (m.status !== "unavailable") return { status: m.status ?? "available", note: null };
  if (m.missing && m.missing.length > 0) return { status: "incomplete", note: `missing ${m.missing.join(", ")}: \`lmx pull ${m.id}\` completes it` };
  if (m.problem) return { status: "invalid", note: m.problem };
  return { status: "unsupported", note: `no backend here opens ${m.format ?? "this format"} (llama.cpp needs GGUF)` };
}

/** One row per model; loaded ones first. A runner whose model left the inventory still gets a row. */
export function mergeModels(available: readonly AvailableModel[], loaded: readonly LoadedModel[]): ModelRow[] {
  const runners = new Map(loaded.map((r) => [r.id, r]));
  const rows: ModelRow[] = available.map((m) => {
    const runner = runners.get(m.id) ?? null;
    runners.delete(m.id);
    const { status, note } = statusOf(m);
    return {
      id: m.id,
      type: m.type ?? null,
      format: m.format ?? null,
      size_bytes: m.size_bytes ?? null,
      quantization: m.quantization ?? null,
      status: runner ? "loaded" : status,
      backend: runner?.backend ?? null,
      memory_bytes: runner?.reserved_bytes ?? null,
      source: m.source ?? null,
      note,
      available: m,
      runner,
    };
  });
  for (const runner of runners.values()) {
    rows.push({
      id: runner.id,
      type: runner.type ?? null,
      format: null,
      size_bytes: null,
      quantization: null,
      status: "loaded",
      backend: runner.backend ?? null,
      memory_bytes: runner.reserved_bytes ?? null,
      source: null,
      note: "loaded, but no longer found on disk",
      available: null,
      runner,
    });
  }
  const rank = (r: ModelRow) => (r.status === "loaded" ? 0 : r.status === "loading" ? 1 : 2);
  return rows
    .map((row, i) => ({ row, i }))
    .sort((a, b) => rank(a.row) - rank(b.row) || a.i - b.i)
    .map(({ row }) => row);
}

export function renderModels(rows: readonly ModelRow[], style: Style): string {
  const statusColor = (row: ModelRow, text: string) =>
    row.status === "loaded"
      ? style.green(text)
      : row.status === "loading"
        ? style.cyan(text)
        : row.status === "available"
          ? text
          : style.yellow(text);
  const columns: Array<Column<ModelRow>> = [
    { header: "ID", value: (r) => r.id },
    { header: "TYPE", value: (r) => r.type ?? "-" },
    { header: "FORMAT", value: (r) => r.format ?? "-" },
    { header: "SIZE", value: (r) => formatBytes(r.size_bytes), align: "right" },
    { header: "QUANT", value: (r) => r.quantization ?? "-" },
    { header: "STATUS", value: (r) => r.status, color: statusColor },
    { header: "BACKEND", value: (r) => r.backend ?? "-" },
    { header: "MEMORY", value: (r) => formatBytes(r.memory_bytes), align: "right" },
  ];
  let text = renderTable(columns, rows, style);
  const notes = rows.filter((r) => r.note && r.status !== "loaded" && r.status !== "available");
  if (notes.length > 0) text += `\n${notes.map((r) => `${style.yellow(r.id)}: ${r.note}`).join("\n")}\n`;
  return text;
}

export function describeLocations(locations: readonly ModelLocation[]): string {
  if (locations.length === 0) return "  (no model_dirs configured and discovery turned off)\n";
  return locations.map((l) => `  ${l.source.padEnd(10)} ${l.path}${l.exists ? "" : "  (does not exist)"}\n`).join("");
}

export async function listModels(options: ModelsOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const [available, loaded] = await Promise.all([
    client.get<AvailableList>("/admin/models/available", "admin"),
    client.get<LoadedList>("/admin/models/loaded", "admin"),
  ]);
  const rows = mergeModels(available.body.data, loaded.body.data);
  const locations = available.body.locations ?? [];
  if (options.json) {
    printJson(io, { object: "list", locations, data: rows });
    return EXIT.ok;
  }
  if (rows.length === 0) {
    // an empty table would hide why: say where the server looked
    io.out(`no models found. The server looked in:\n${describeLocations(locations)}`);
    io.out(
      `${io.style.dim("fix:")} put GGUF files in one of these folders, add model_dirs or models to the server's config, or \`lmx pull org/repo\`\n`,
    );
    return EXIT.ok;
  }
  io.out(renderModels(rows, io.style));
  return EXIT.ok;
}

export function registerModelsCommand(program: Command): void {
  withConnection(program.command("models").description("models on disk and loaded, in one table"))
    .option("--json", "print the merged list as JSON (with the folders the server looked in)")
    .action((options: ModelsOptions) => run((io) => listModels(options, io)));
}
