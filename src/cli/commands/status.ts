/** `lmx status`: one screen from GET /admin/status — health, memory budget, queue, loaded models, problems. */
import type { Command } from "commander";
import type { LoadedModel, ServerStatus } from "../api-types.js";
import { clientFor, printJson, run, withConnection } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { formatBytes, formatDuration, renderPairs, type Style } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface StatusOptions extends ConnectionOptions {
  json?: boolean;
}

function loadedLine(m: LoadedModel): string {
  const parts = [
    m.id,
    m.backend ?? "?",
    m.context_size !== undefined ? `ctx ${m.context_size}×${m.parallel ?? 1}` : null,
    m.reserved_bytes !== undefined ? formatBytes(m.reserved_bytes) : null,
    m.pid !== undefined ? `pid ${m.pid}` : null,
    m.requests_served !== undefined ? `${m.requests_served} requests` : null,
    m.idle_sec !== undefined ? `idle ${formatDuration(m.idle_sec)}` : null,
    m.pinned ? "pinned" : null,
  ];
  return parts.filter((p): p is string => p !== null).join("  ");
}

export function renderStatus(status: ServerStatus, url: string, style: Style): string {
  const pairs: Array<[string, string]> = [];
  const ready = status.ready === false ? style.yellow("starting (auto_load in progress)") : style.green("ready");
  pairs.push([
    "server",
    [url, status.version ? `v${status.version}` : null, status.uptime_sec !== undefined ? `up ${formatDuration(status.uptime_sec)}` : null, ready]
      .filter(Boolean)
      .join(" · "),
  ]);
  const mem = status.memory;
  if (mem) {
    const share = mem.total_bytes > 0 ? ` (${Math.round((mem.budget_bytes / mem.total_bytes) * 100)}% of ${formatBytes(mem.total_bytes)} RAM)` : "";
    pairs.push([
      "memory",
      `${formatBytes(mem.used_bytes)} used of a ${formatBytes(mem.budget_bytes)} budget${share} · ${formatBytes(mem.available_bytes)} free on the machine`,
    ]);
    for (const gpu of mem.gpus ?? []) {
      pairs.push([
        `gpu ${gpu.index}`,
        `${formatBytes(gpu.used_bytes)} used of a ${formatBytes(gpu.budget_bytes)} budget (of ${formatBytes(gpu.total_bytes)})`,
      ]);
    }
  }
  if (status.queue) pairs.push(["queue", `${status.queue.running} running · ${status.queue.waiting} waiting`]);
  const loaded = status.models_loaded ?? [];
  pairs.push(["models", `${status.models_available ?? "?"} servable · ${loaded.length} loaded`]);
  if (loaded.length === 0) pairs.push(["loaded", style.dim("none")]);
  loaded.forEach((m, i) => pairs.push([i === 0 ? "loaded" : "", loadedLine(m)]));
  const quarantined = status.quarantined ?? [];
  if (quarantined.length === 0) pairs.push(["quarantined", style.dim("none")]);
  quarantined.forEach((q, i) =>
    pairs.push([
      i === 0 ? "quarantined" : "",
      style.red(`${q.model_id} on ${q.backend}${q.last_reasons?.length ? ` (${q.last_reasons.join(", ")})` : ""}`),
    ]),
  );
  const storage = status.storage;
  if (storage) {
    if (storage.degraded) {
      pairs.push(["storage", style.red(`DEGRADED (${storage.file ?? "in memory"}): ${storage.problems.length} problem(s)`)]);
      for (const p of storage.problems.slice(-3)) pairs.push(["", style.red(`${p.component}: ${p.error}`)]);
    } else {
      pairs.push(["storage", `ok (${storage.file ?? "in memory"})`]);
    }
  }
  (status.disk ?? []).forEach((d, i) =>
    pairs.push([
      i === 0 ? "disk" : "",
      d.error ? style.yellow(`${d.path}: ${d.error}`) : `${d.path}  ${formatBytes(d.free_bytes)} free of ${formatBytes(d.total_bytes)}`,
    ]),
  );
  const downloads = status.downloads ?? [];
  if (downloads.length === 0) pairs.push(["downloads", style.dim("none running")]);
  downloads.forEach((d, i) =>
    pairs.push([
      i === 0 ? "downloads" : "",
      `${d.repo}  ${d.bytes_total > 0 ? Math.floor((d.bytes_done / d.bytes_total) * 100) : 0}% of ${formatBytes(d.bytes_total)}  (${d.status})`,
    ]),
  );
  return renderPairs(pairs, style);
}

export function registerStatusCommand(program: Command): void {
  withConnection(program.command("status").description("server health, version, memory budget, queue, loaded and quarantined models, storage"))
    .option("--json", "print GET /admin/status as JSON")
    .action((options: StatusOptions) =>
      run(async (io) => {
        const client = clientFor(options);
        const { body } = await client.get<ServerStatus>("/admin/status", "admin");
        if (options.json) printJson(io, body);
        else io.out(renderStatus(body, client.target.url, io.style));
        return EXIT.ok;
      }),
    );
}
