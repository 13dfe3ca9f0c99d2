/**
 * Live: throughput, time to first token, inter-token latency and queue depth by priority class, sampled from
 * /metrics every few seconds (rates and interval means from counter deltas), queue moves from /admin/events, and
 * the memory budget against what each model holds, from /admin/status.
 */
import uPlot from "/ui/vendor/uPlot.esm.js";
import { api, text } from "../api.js";
import { on } from "../events.js";
import { bytes, clear, h, toast } from "../dom.js";
import { byLabel, parseMetrics, sum } from "../metrics.js";

const POLL_MS = 2000;
const KEEP = 150;
const CLASSES = ["interactive", "normal", "batch"];

let timer = null;
let previous = null;
const series = { t: [], tokps: [], ttft: [], itl: [], waiting: { interactive: [], normal: [], batch: [] }, running: [] };
let charts = [];
let memoryEl;
let queueNow = { running: 0, waiting: 0 };

function chart(el, title, labels, colors, unit) {
  const width = Math.max(200, el.clientWidth - 8);
  const opts = {
    title,
    width,
    height: 180,
    series: [
      {},
      ...labels.map((label, i) => ({
        label,
        stroke: colors[i],
        width: 2,
        value: (_u, v) => (v === null || v === undefined ? "–" : `${v.toFixed(2)} ${unit}`),
      })),
    ],
    axes: [{}, { size: 60 }],
    // a fixed window ending now: uPlot would otherwise stretch one sample over years of axis
    scales: { x: { time: true, range: (_u, _min, max) => [max - (KEEP * POLL_MS) / 1000, max] } },
  };
  return new uPlot(opts, [[], ...labels.map(() => [])], el);
}

function push(arr, value) {
  arr.push(value);
  if (arr.length > KEEP) arr.shift();
}

/** Mean of a histogram over the last interval: Δsum / Δcount (null when nothing was observed). */
function intervalMean(now, before, name) {
  const dc = sum(now, `${name}_count`) - sum(before, `${name}_count`);
  return dc > 0 ? (sum(now, `${name}_sum`) - sum(before, `${name}_sum`)) / dc : null;
}

async function sample() {
  let samples;
  try {
    samples = parseMetrics(await text("/metrics"));
  } catch (e) {
    toast(`Could not read /metrics: ${e.message}`);
    return;
  }
  const t = Date.now() / 1000;
  if (previous) {
    const dt = t - previous.t;
    push(series.t, t);
    push(series.tokps, Math.max(0, (sum(samples, "lmx:generation_tokens_total") - sum(previous.samples, "lmx:generation_tokens_total")) / dt));
    const ttft = intervalMean(samples, previous.samples, "lmx:time_to_first_token_seconds");
    const itl = intervalMean(samples, previous.samples, "lmx:inter_token_latency_seconds");
    push(series.ttft, ttft === null ? null : ttft * 1000);
    push(series.itl, itl === null ? null : itl * 1000);
    const waiting = byLabel(samples, "lmx:num_requests_waiting_by_priority", "priority");
    for (const c of CLASSES) push(series.waiting[c], waiting[c] ?? 0);
    push(series.running, sum(samples, "lmx:num_requests_running"));
    draw();
  }
  previous = { t, samples };
  void memory();
}

function draw() {
  // for tests and screenshots: has a sample with generated tokens been drawn?
  if (series.tokps.some((v) => v > 0)) livePage.cards[0].dataset.traffic = "true";
  if (charts.length === 0) return;
  charts[0].setData([series.t, series.tokps]);
  charts[1].setData([series.t, series.ttft, series.itl]);
  charts[2].setData([series.t, series.running, ...CLASSES.map((c) => series.waiting[c])]);
}

async function memory() {
  let status;
  try {
    status = await api("/admin/status");
  } catch {
    return;
  }
  const m = status.memory;
  const rows = Object.entries(m.models ?? {}).map(([model, r]) =>
    h(
      "div",
      { class: "field" },
      h("span", {}, `${model}: ${bytes(r?.bytes ?? 0)} (${r?.kind ?? "–"})`),
      h(
        "div",
        { class: "bar", role: "img", "aria-label": `${model} holds ${bytes(r?.bytes ?? 0)} of ${bytes(m.budget_bytes)}` },
        h("span", { style: { width: `${Math.min(100, (100 * (r?.bytes ?? 0)) / m.budget_bytes)}%` } }),
      ),
    ),
  );
  clear(
    memoryEl,
    h("p", {}, `Budget ${bytes(m.budget_bytes)} · used ${bytes(m.used_bytes)} · machine ${bytes(m.total_bytes)} (${bytes(m.available_bytes)} free)`),
    h(
      "div",
      { class: "bar", role: "img", "aria-label": `used ${bytes(m.used_bytes)} of ${bytes(m.budget_bytes)}` },
      h("span", { style: { width: `${Math.min(100, (100 * m.used_bytes) / m.budget_bytes)}%` } }),
    ),
    rows.length > 0 ? rows : h("p", { class: "muted" }, "No model holds memory."),
    h("p", { class: "muted", id: "live-queue" }, `Queue now: ${queueNow.running} running, ${queueNow.waiting} waiting`),
  );
}

/** uPlot draws at a fixed width: follow the cards when the window changes size. */
function fit() {
  charts.forEach((c, i) => c.setSize({ width: Math.max(200, livePage.cards[i].clientWidth - 8), height: 180 }));
}
window.addEventListener("resize", () => {
  if (!livePage.el?.hidden) fit();
});

export const livePage = {
  id: "live",
  title: "Live",
  mount(el) {
    const cards = [h("div", { class: "chart" }), h("div", { class: "chart" }), h("div", { class: "chart" })];
    memoryEl = h("div", { id: "live-memory" });
    el.append(
      h("p", { class: "muted" }, `Sampled from /metrics every ${POLL_MS / 1000} s while this page is open; the last ${KEEP} samples.`),
      h(
        "div",
        { class: "grid" },
        h("div", { class: "card" }, h("h3", {}, "Throughput (generated tokens/s)"), cards[0]),
        h("div", { class: "card" }, h("h3", {}, "Latency (ms, mean over each interval)"), cards[1]),
        h("div", { class: "card" }, h("h3", {}, "Queue by priority class"), cards[2]),
        h("div", { class: "card" }, h("h3", {}, "Memory budget and use per model"), memoryEl),
      ),
    );
    this.cards = cards;
    on("queue", (q) => {
      queueNow = q;
      const line = document.getElementById("live-queue");
      if (line) line.textContent = `Queue now: ${q.running} running, ${q.waiting} waiting`;
    });
    on("snapshot", (snap) => (queueNow = { running: snap.queue.running, waiting: snap.queue.waiting }));
  },
  show() {
    fit();
    // uPlot measures its container: build the charts once the page is visible
    if (charts.length === 0) {
      charts = [
        chart(this.cards[0], "", ["tokens/s"], ["#0b5cad"], "tok/s"),
        chart(this.cards[1], "", ["TTFT", "inter-token"], ["#0b5cad", "#b35c00"], "ms"),
        chart(this.cards[2], "", ["running", ...CLASSES.map((c) => `waiting ${c}`)], ["#176b2c", "#b00020", "#0b5cad", "#7a4fb3"], ""),
      ];
      draw();
    }
    void sample();
    clearInterval(timer);
    timer = setInterval(sample, POLL_MS);
  },
  hide() {
    clearInterval(timer);
    timer = null;
  },
};
