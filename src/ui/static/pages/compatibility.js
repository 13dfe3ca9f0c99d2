/** Compatibility and benchmarks: the registry's history per model and backend, quarantine, and stored benchmark results. */
import uPlot from "/ui/vendor/uPlot.esm.js";
import { api } from "../api.js";
import { clear, h, num, table, toast } from "../dom.js";

let summaryEl;
let quarantineEl;
let historyEl;
let benchEl;
let benchChartEl;
let benchChart = null;
let modelFilter = "";

async function refresh() {
  try {
    const query = modelFilter ? `&model=${encodeURIComponent(modelFilter)}` : "";
    const [summary, history, bench] = await Promise.all([
      api("/admin/models/compatibility?view=summary"),
      api(`/admin/models/compatibility?limit=100${query}`),
      api(`/admin/benchmarks?limit=100${modelFilter ? `&model=${encodeURIComponent(modelFilter)}` : ""}`),
    ]);
    renderSummary(summary.data);
    renderQuarantine(history.quarantined);
    renderHistory(history.data, history.total);
    renderBench(bench.data);
  } catch (e) {
    toast(`Could not read the registry: ${e.message}`);
  }
}

function renderSummary(rows) {
  clear(
    summaryEl,
    table(
      ["Model", "Attempts", "Successes", "Failures", "Refused", "Last"],
      rows.length > 0
        ? rows.map((r) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, r.model_id),
              h("td", { class: "num" }, r.attempts),
              h("td", { class: "num" }, r.successes),
              h("td", { class: "num" }, r.failures),
              h("td", { class: "num" }, r.refused),
              h("td", {}, r.last_at),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No load attempts recorded yet."))],
    ),
  );
}

function renderQuarantine(rows) {
  clear(
    quarantineEl,
    rows.length === 0
      ? h("p", { class: "muted" }, "Nothing is quarantined.")
      : table(
          ["Model", "Backend", "Failures in a row", "Last reasons", ""],
          rows.map((q) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, q.model_id),
              h("td", {}, q.backend),
              h("td", { class: "num" }, q.consecutive_failures),
              h("td", { class: "wrap" }, q.last_reasons.join(", ")),
              h(
                "td",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    "aria-label": `Unquarantine ${q.model_id} on ${q.backend}`,
                    onclick: async () => {
                      try {
                        await api("/admin/models/unquarantine", { method: "POST", body: { model_id: q.model_id, backend: q.backend } });
                        toast(`Unquarantined ${q.model_id} on ${q.backend}`);
                      } catch (e) {
                        toast(`Unquarantine failed: ${e.message}`);
                      }
                      void refresh();
                    },
                  },
                  "Unquarantine",
                ),
              ),
            ),
          ),
        ),
  );
}

function renderHistory(rows, total) {
  clear(
    historyEl,
    table(
      ["When", "Model", "Backend", "Version", "Runtime", "Outcome", "Reason", "Message", "Duration"],
      rows.length > 0
        ? rows.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.at),
              h("th", { scope: "row" }, r.model_id),
              h("td", {}, r.backend),
              h("td", {}, r.backend_version),
              h("td", {}, r.runtime_signature),
              h("td", { class: `status status-${r.outcome}` }, r.outcome),
              h("td", {}, r.reason ?? ""),
              h("td", { class: "wrap" }, r.message ?? ""),
              h("td", { class: "num" }, r.duration_ms === null ? "–" : `${Math.round(r.duration_ms)} ms`),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No attempts."))],
      `${rows.length} of ${total} attempts, newest first`,
    ),
  );
}

function renderBench(rows) {
  clear(
    benchEl,
    table(
      ["When", "Model", "Backend", "Version", "Source", "Baseline", "Avg output tok/s", "Settings"],
      rows.length > 0
        ? rows.map((r) =>
            h(
              "tr",
              {},
              h("td", {}, r.created_at),
              h("th", { scope: "row" }, r.model),
              h("td", {}, r.backend),
              h("td", {}, r.backend_version ?? "–"),
              h("td", {}, r.source),
              h("td", {}, r.baseline ? "yes" : ""),
              h("td", { class: "num" }, num(r.avg_tok_s)),
              h("td", { class: "wrap muted" }, r.settings),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No stored results: run `lmx bench` or POST /admin/benchmark."))],
    ),
  );
  const ordered = [...rows].reverse().filter((r) => r.avg_tok_s !== null);
  const data = [ordered.map((_r, i) => i + 1), ordered.map((r) => r.avg_tok_s)];
  if (!benchChart) {
    benchChart = new uPlot(
      {
        width: Math.max(200, benchChartEl.clientWidth - 8),
        height: 180,
        scales: { x: { time: false } },
        series: [{ label: "run" }, { label: "avg output tok/s", stroke: "#0b5cad", width: 2, points: { show: true, size: 6 } }],
        axes: [{}, { size: 60 }],
      },
      data,
      benchChartEl,
    );
  } else benchChart.setData(data);
}

window.addEventListener("resize", () => {
  if (benchChart && !compatibilityPage.el?.hidden) benchChart.setSize({ width: Math.max(200, benchChartEl.clientWidth - 8), height: 180 });
});

export const compatibilityPage = {
  id: "compatibility",
  title: "Compatibility & benchmarks",
  mount(el) {
    const filter = h("input", { id: "compat-model", type: "search", placeholder: "all models" });
    summaryEl = h("div");
    quarantineEl = h("div");
    historyEl = h("div");
    benchEl = h("div");
    benchChartEl = h("div", { class: "chart card" });
    el.append(
      h(
        "form",
        {
          class: "row",
          onsubmit: (event) => {
            event.preventDefault();
            modelFilter = filter.value.trim();
            void refresh();
          },
        },
        h("div", { class: "field" }, h("label", { for: "compat-model" }, "Model id"), filter),
        h("button", { type: "submit" }, "Show"),
      ),
      h("h3", {}, "Per model"),
      summaryEl,
      h("h3", {}, "Quarantined"),
      quarantineEl,
      h("h3", {}, "Load attempts and runner deaths"),
      historyEl,
      h("h3", {}, "Stored benchmark results"),
      benchChartEl,
      benchEl,
    );
  },
  show() {
    benchChart?.setSize({ width: Math.max(200, benchChartEl.clientWidth - 8), height: 180 });
    void refresh();
  },
};
