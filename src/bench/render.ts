/** Human-readable tables for a BenchReport (the `--json` document is the report itself). */
import type { GateOutcome } from "./gate.js";
import type { BenchReport, TargetReport } from "./types.js";

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function n(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

function x(value: number | null): string {
  return value === null ? "-" : `${value.toFixed(2)}x`;
}

function mb(bytes: number | null): string {
  return bytes === null ? "-" : `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

function describe(target: TargetReport, report: BenchReport): string {
  const info = target.info;
  const runner = info.runner
    ? Object.entries(info.runner)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(", ")
    : "-";
  const prompt =
    report.workload.scenario === "multiturn"
      ? `system prompt ${report.workload.systemTokens} tokens (server counted ${target.system_tokens_actual ?? "?"} with turn 1)`
      : `prompt ${report.workload.promptTokens} tokens (server counted ${target.prompt_tokens_actual ?? "?"})`;
  return [
    `[${target.label}] ${target.url}  model ${target.model}`,
    `    backend ${info.backend}${info.backend_version ? ` (${info.backend_version})` : ""}; runner: ${runner}; runner RSS ${mb(info.runner_rss_bytes)}`,
    `    ${prompt}, max_tokens ${report.workload.maxTokens}, /v1/${report.workload.endpoint === "chat" ? "chat/completions" : "completions"}, response_format ${target.response_format ?? "text"}, ignore_eos ${target.ignore_eos ? "sent" : report.workload.ignoreEos ? "not accepted" : "not sent"}, rounds ${report.workload.rounds}`,
  ].join("\n");
}

function levelTable(target: TargetReport): string {
  return table(
    [
      "conc",
      "reqs",
      "err",
      "tok/s",
      "tok/req",
      "req/s",
      "TTFT p50",
      "p95",
      "p99",
      "ITL p50",
      "p95",
      "E2E p50",
      "p95",
      "prompt",
      "cached",
      "spec acc",
    ],
    target.levels.map((l) => [
      String(l.concurrency),
      String(l.requests),
      String(l.errors),
      n(l.output_tok_s),
      n(l.completion_tokens_mean ?? null),
      n(l.requests_per_s, 2),
      n(l.ttft_ms.p50),
      n(l.ttft_ms.p95),
      n(l.ttft_ms.p99),
      n(l.itl_ms.p50, 2),
      n(l.itl_ms.p95, 2),
      n(l.e2e_ms.p50, 0),
      n(l.e2e_ms.p95, 0),
      n(l.prompt_tokens_mean, 0),
      n(l.cached_tokens_mean, 0),
      l.spec_accept_rate === null ? "-" : `${(l.spec_accept_rate * 100).toFixed(0)}%`,
    ]),
  );
}

function multiTurnTables(target: TargetReport): string {
  return (target.multiturn ?? [])
    .map((level) =>
      [
        `  concurrency ${level.concurrency}, ${level.conversations} conversations: last turn / first turn TTFT ${x(level.last_over_first_ttft)} (target ≤ 1.20x)`,
        table(
          ["turn", "convs", "err", "TTFT p50", "p95", "E2E p50", "prompt", "cached"],
          level.turns.map((t) => [
            String(t.turn),
            String(t.conversations),
            String(t.errors),
            n(t.ttft_ms_p50),
            n(t.ttft_ms_p95),
            n(t.e2e_ms_p50, 0),
            n(t.prompt_tokens_p50, 0),
            n(t.cached_tokens_p50, 0),
          ]),
        ),
      ].join("\n"),
    )
    .join("\n\n");
}

/** A side of a ratio: its backend, and its response_format when the run constrains either side. */
function side(target: TargetReport | undefined, report: BenchReport): string {
  if (!target) return "?";
  const constrained = report.targets.some((t) => (t.response_format ?? "text") !== "text");
  return constrained ? `${target.info.backend}, ${target.response_format ?? "text"}` : target.info.backend;
}

export function renderReport(report: BenchReport, gate: GateOutcome | null = null): string {
  const parts: string[] = [];
  for (const target of report.targets) {
    parts.push(describe(target, report));
    parts.push(report.workload.scenario === "multiturn" ? multiTurnTables(target) : levelTable(target));
    for (const level of target.levels) {
      for (const e of level.error_samples) parts.push(`    error at concurrency ${level.concurrency}: ${e}`);
    }
    parts.push("");
  }
  if (report.comparison) {
    const [a, b] = report.targets;
    parts.push(
      `ratio ${a?.label}/${b?.label} (${side(a, report)} / ${side(b, report)}); tok/s: higher is better for ${a?.label}, latencies: lower is better`,
    );
    parts.push(
      table(
        ["conc", "tok/s", "TTFT p50", "TTFT p95", "ITL p50", "E2E p50"],
        report.comparison.map((r) => [
          String(r.concurrency),
          x(r.output_tok_s),
          x(r.ttft_ms_p50),
          x(r.ttft_ms_p95),
          x(r.itl_ms_p50),
          x(r.e2e_ms_p50),
        ]),
      ),
    );
    parts.push("");
  }
  if (report.multiturn_comparison) {
    const [a, b] = report.targets;
    parts.push(`TTFT p50 ratio ${a?.label}/${b?.label} per turn (lower is better)`);
    parts.push(
      table(
        ["conc", "turn", "TTFT p50"],
        report.multiturn_comparison.map((r) => [String(r.concurrency), String(r.turn), x(r.ttft_ms_p50)]),
      ),
    );
    parts.push("");
  }
  const a = report.targets[0];
  if (a && a.avg_output_tok_s !== null) parts.push(`average output tok/s of ${a.label} over its levels: ${a.avg_output_tok_s.toFixed(1)}`);
  if (gate) parts.push(gate.message);
  parts.push(`git ${report.git_commit ?? "unknown"}, ${report.started_at} → ${report.finished_at}`);
  return parts.join("\n") + "\n";
}
