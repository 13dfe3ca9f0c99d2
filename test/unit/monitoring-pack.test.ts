/**
 * The monitoring pack (ops/): the alert rules are valid and each one fires on synthetic series (promtool), and
 * every metric the alerts and the Grafana dashboard query is one the server exports, so a renamed metric
 * cannot leave a silent alert or an empty panel behind.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { LmxMetrics } from "../../src/metrics/metrics.js";
import { PROJECT_ROOT } from "../helpers/models.js";
import { promtoolOrSkip } from "../helpers/promtool.js";

const ALERTS = path.join(PROJECT_ROOT, "ops", "prometheus", "alerts.yaml");
const ALERT_TESTS = path.join(PROJECT_ROOT, "ops", "prometheus", "alerts.test.yaml");
const DASHBOARD = path.join(PROJECT_ROOT, "ops", "grafana", "lmx-dashboard.json");

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
}

function alertRules(): AlertRule[] {
  const doc = parseYaml(readFileSync(ALERTS, "utf8")) as { groups: Array<{ rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

/** Series names the server exports: every metric in the registry, histograms as their _bucket/_sum/_count. */
async function exportedNames(): Promise<Set<string>> {
  const models = Object.assign(new EventEmitter(), { loaded: () => [], runnerFor: () => null });
  const metrics = new LmxMetrics({
    models,
    admission: Object.assign(new EventEmitter(), {
      snapshot: () => ({
        running: 0,
        waiting: 0,
        per_model: {},
        per_priority: { interactive: { running: 0, waiting: 0 }, normal: { running: 0, waiting: 0 }, batch: { running: 0, waiting: 0 } },
      }),
    }),
    memory: {
      snapshot: () => ({
        total_bytes: 0,
        available_bytes: 0,
        budget_bytes: 0,
        used_bytes: 0,
        runner_overhead_bytes: 0,
        gpus: [],
        gpu_runner_overhead_bytes: 0,
        models: {},
      }),
    },
    downloads: { list: () => [] },
    diskPaths: [PROJECT_ROOT],
  });
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const { name } = metric;
    const type = String(metric.type);
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    else if (type === "summary") for (const suffix of ["", "_sum", "_count"]) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"]);

/** Metric names a PromQL expression selects (functions, keywords, labels, durations and Grafana variables removed). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names: string[] = [];
  for (const match of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = match[0];
    const before = bare[match.index - 1] ?? " ";
    if (/[0-9.]/.test(before)) continue; // the unit of a duration or the exponent of a number
    if (
      bare
        .slice(match.index + word.length)
        .trimStart()
        .startsWith("(")
    )
      continue; // a function
    if (KEYWORDS.has(word.toLowerCase())) continue;
    names.push(word);
  }
  return names;
}

describe("alert rules", () => {
  test("promtool check rules accepts them", (t) => {
    if (!promtoolOrSkip(t)) return;
    const result = spawnSync("promtool", ["check", "rules", ALERTS], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test("promtool test rules: every alert fires on its synthetic series and stays quiet on healthy ones", (t) => {
    if (!promtoolOrSkip(t)) return;
    const result = spawnSync("promtool", ["test", "rules", ALERT_TESTS], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test("every alert has a test case in which it fires", () => {
    const tests = parseYaml(readFileSync(ALERT_TESTS, "utf8")) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
    };
    const firing = new Set(
      tests.tests.flatMap((c) => (c.alert_rule_test ?? []).filter((a) => (a.exp_alerts ?? []).length > 0).map((a) => a.alertname)),
    );
    const alerts = alertRules().flatMap((r) => (r.alert ? [r.alert] : []));
    assert.ok(alerts.length >= 7, "queue, TTFT, errors, memory, crash loop, quarantine and disk alerts");
    for (const alert of alerts) assert.ok(firing.has(alert), `alerts.test.yaml has no case in which ${alert} fires`);
  });

  test("every expression uses only metrics the server exports", async () => {
    const exported = await exportedNames();
    for (const rule of alertRules()) {
      const names = metricNames(rule.expr);
      assert.ok(
        names.some((n) => n.startsWith("lmx:")),
        `${rule.alert} queries no lmx: metric`,
      );
      for (const name of names) assert.ok(exported.has(name), `${rule.alert} uses ${name}, which the server does not export`);
    }
  });
});

describe("Grafana dashboard", () => {
  interface Target {
    expr?: string;
  }
  interface Panel {
    type: string;
    title: string;
    datasource?: { uid?: string };
    targets?: Target[];
    panels?: Panel[];
  }
  interface Dashboard {
    schemaVersion: number;
    __inputs: Array<{ name: string; pluginId: string }>;
    panels: Panel[];
    templating: { list: Array<{ name: string; query: string | { query: string } }> };
  }
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");

  test("an importable dashboard with a Prometheus datasource input and the panels operators need", () => {
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.deepEqual(
      dashboard.__inputs.map((i) => [i.name, i.pluginId]),
      [["DS_PROMETHEUS", "prometheus"]],
    );
    assert.ok(panels.length >= 6, `${panels.length} panels`);
    for (const panel of panels) {
      assert.equal(panel.datasource?.uid, "${DS_PROMETHEUS}", `panel '${panel.title}' uses the datasource input`);
      assert.ok((panel.targets ?? []).length > 0 && panel.targets!.every((t) => t.expr), `panel '${panel.title}' has queries`);
    }
    const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? "")).join("\n");
    for (const needed of [
      "lmx:num_requests_running",
      "lmx:num_requests_waiting",
      "lmx:time_to_first_token_seconds_bucket",
      "lmx:inter_token_latency_seconds_bucket",
      "lmx:generation_tokens_total",
      'lmx:requests_total{status=~"5.."',
      "lmx:memory_used_bytes",
      "lmx:memory_budget_bytes",
      "lmx:models_loaded",
    ]) {
      assert.ok(queries.includes(needed), `a panel queries ${needed}`);
    }
  });

  test("every panel query and variable uses only metrics the server exports", async () => {
    const exported = await exportedNames();
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        const names = metricNames(target.expr ?? "");
        assert.ok(names.length > 0, `panel '${panel.title}': ${target.expr}`);
        for (const name of names) assert.ok(exported.has(name), `panel '${panel.title}' uses ${name}, which the server does not export`);
      }
    }
    for (const variable of dashboard.templating.list) {
      const query = typeof variable.query === "string" ? variable.query : variable.query.query;
      // label_values(<selector>, <label>): the selector is PromQL
      const selector = /^label_values\((.*),\s*\w+\)$/.exec(query)?.[1] ?? query;
      for (const name of metricNames(selector)) assert.ok(exported.has(name), `variable ${variable.name} uses ${name}`);
    }
  });

  test("the name extraction itself sees metrics and only metrics", () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.95, sum by (model, le) (rate(lmx:a_bucket{model=~"$model", x="y"}[$__rate_interval] offset 1d))) > 2 * lmx:b / on (instance) lmx:c and 1e9 < 5',
      ),
      ["lmx:a_bucket", "lmx:b", "lmx:c"],
    );
  });
});
