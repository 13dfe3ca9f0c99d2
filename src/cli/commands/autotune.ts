/**
 * `lmx autotune MODEL`: starts a search (POST /admin/models/autotune) and polls its job once a second
 * (GET /admin/autotune/jobs/{id}), drawing "candidate n of N" and the best so far; at the end, the search table
 * and what was applied. `lmx autotune MODEL --show` prints the current profile and history; `--rollback` goes
 * back to the last known good profile.
 */
import type { Command } from "commander";
import { clientFor, positiveInt, printJson, run, withConnection, type Io } from "../command-kit.js";
import { EXIT } from "../exit.js";
import { renderTable, type Column, type Style } from "../format.js";
import type { ConnectionOptions } from "../target.js";

interface AutotuneOptions extends ConnectionOptions {
  workload?: string;
  budget?: number;
  dryRun?: boolean;
  axes?: string;
  show?: boolean;
  rollback?: boolean;
  json?: boolean;
}

interface Metrics {
  tok_s: number;
  ttft_ms: number;
  error_rate: number;
  total_ms: number;
}

export interface CandidateRow {
  n: number;
  rung: number;
  label: string;
  outcome: "ok" | "failed" | "skipped";
  reason: string | null;
  metrics: Metrics | null;
  score: number | null;
}

export interface AutotuneJob {
  id: string;
  model_id: string;
  backend: string | null;
  status: "running" | "completed" | "failed";
  workload: string;
  progress: { n: number; total: number; rung: number; best: { label: string; score: number } | null; message: string; elapsed_ms: number } | null;
  candidates: CandidateRow[];
  result: {
    profile_id: number | null;
    applied: boolean;
    winner: CandidateRow | null;
    baseline: CandidateRow | null;
    settings: Record<string, unknown>;
    score_gain_pct: number | null;
    tok_s_gain_pct: number | null;
    stopped_early: boolean;
  } | null;
  error: { code: string; message: string } | null;
}

const POLL_MS = 1000;

export function renderCandidates(rows: readonly CandidateRow[], style: Style, winner: number | null): string {
  const color = (row: CandidateRow, text: string) =>
    row.n === winner ? style.green(text) : row.outcome === "failed" ? style.red(text) : row.outcome === "skipped" ? style.yellow(text) : text;
  const columns: Array<Column<CandidateRow>> = [
    { header: "#", value: (r) => String(r.n), align: "right" },
    { header: "RUNG", value: (r) => String(r.rung), align: "right" },
    { header: "CANDIDATE", value: (r) => r.label, color },
    { header: "TOK/S", value: (r) => (r.metrics ? r.metrics.tok_s.toFixed(1) : "-"), align: "right" },
    { header: "TTFT", value: (r) => (r.metrics ? `${r.metrics.ttft_ms.toFixed(0)} ms` : "-"), align: "right" },
    { header: "ERR", value: (r) => (r.metrics ? `${(r.metrics.error_rate * 100).toFixed(0)}%` : "-"), align: "right" },
    { header: "SCORE", value: (r) => (r.score === null ? "-" : r.score.toFixed(1)), align: "right" },
    { header: "OUTCOME", value: (r) => (r.outcome === "ok" ? (r.n === winner ? "best" : "ok") : `${r.outcome}: ${r.reason ?? ""}`), color },
  ];
  return renderTable(columns, rows, style);
}

export function renderResult(job: AutotuneJob, style: Style): string {
  const lines = [
    `${job.model_id} on ${job.backend ?? "?"}, workload ${job.workload}`,
    renderCandidates(job.candidates, style, job.result?.winner?.n ?? null),
  ];
  if (job.status === "failed") return `${lines.join("\n")}${style.red(`autotune failed: ${job.error?.code}: ${job.error?.message}`)}\n`;
  const r = job.result;
  if (!r || !r.winner) return `${lines.join("\n")}${style.yellow("no candidate could be measured: nothing recorded")}\n`;
  const gain =
    r.tok_s_gain_pct === null
      ? ""
      : ` (${r.tok_s_gain_pct >= 0 ? "+" : ""}${r.tok_s_gain_pct}% tok/s, score ${r.score_gain_pct ?? "?"}% over the current settings)`;
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
  lines.push(`best: ${style.bold(r.winner.label)}${gain}`);
  lines.push(`profile #${r.profile_id}: ${settings}`);
  lines.push(r.applied ? "applied: used from the model's next load (lmx load reloads it now)" : "dry run: recorded, not applied");
  if (r.stopped_early) lines.push(style.yellow("the time budget ran out before every candidate ran (--budget)"));
  return `${lines.join("\n")}\n`;
}

async function autotune(model: string, options: AutotuneOptions, io: Io): Promise<number> {
  const client = clientFor(options);
  const encoded = model.split("/").map(encodeURIComponent).join("/");
  if (options.show) {
    const { body } = await client.get<unknown>(`/admin/models/${encoded}/autotune`, "admin");
    printJson(io, body);
    return EXIT.ok;
  }
  if (options.rollback) {
    const { body } = await client.post<{ rolled_back: number; current: { id: number } | null }>(
      `/admin/models/${encoded}/autotune/rollback`,
      "admin",
      {},
    );
    if (options.json) printJson(io, body);
    else
      io.out(
        `rolled back profile #${body.rolled_back}; now ${body.current ? `profile #${body.current.id}` : "no profile (presets, config and defaults)"}\n`,
      );
    return EXIT.ok;
  }
  const request = {
    model_id: model,
    ...(options.workload ? { workload: options.workload } : {}),
    ...(options.budget !== undefined ? { budget_sec: options.budget } : {}),
    ...(options.dryRun ? { dry_run: true } : {}),
    ...(options.axes ? { axes: options.axes.split(",").map((a) => a.trim()) } : {}),
  };
  let { body: job } = await client.post<AutotuneJob>("/admin/models/autotune", "admin", request);
  const bar = io.stderrTTY && !options.json;
  let lastMessage = "";
  while (job.status === "running") {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = (await client.get<AutotuneJob>(`/admin/autotune/jobs/${job.id}`, "admin")).body;
    const p = job.progress;
    if (!p || options.json) continue;
    const filled = Math.round((Math.min(p.n, p.total) / Math.max(1, p.total)) * 20);
    const best = p.best ? `best: ${p.best.label} (score ${p.best.score})` : "best: -";
    const line = `[${"#".repeat(filled)}${"-".repeat(20 - filled)}] candidate ${p.n} of ${p.total}  ${best}  ${Math.round(p.elapsed_ms / 1000)} s`;
    if (bar) io.err(`\r\x1b[2K${line}`);
    else if (p.message !== lastMessage) io.err(`${p.message}  (${best})\n`);
    lastMessage = p.message;
  }
  if (bar) io.err("\r\x1b[2K");
  if (options.json) printJson(io, job);
  else io.out(renderResult(job, io.style));
  return job.status === "completed" && job.result?.winner ? EXIT.ok : EXIT.failed;
}

export function registerAutotuneCommand(program: Command): void {
  withConnection(
    program
      .command("autotune")
      .argument("<model>", "model id or alias")
      .description("find the best runner settings for a model on this machine by measurement, and apply them at its next load"),
  )
    .option("--workload <name>", "streams-8 (default), streams-32, chat or long-prompt")
    .option("--budget <sec>", "time budget of the search in seconds (default 300)", positiveInt)
    .option("--axes <list>", "search only these axes, comma-separated (threads,parallel,batch,flash_attention,kv_cache,...)")
    .option("--dry-run", "record the result without applying it")
    .option("--show", "print the model's current profile and history (JSON)")
    .option("--rollback", "go back to the last known good profile")
    .option("--json", "print the job as JSON")
    .action((model: string, options: AutotuneOptions) => run((io) => autotune(model, options, io)));
}
