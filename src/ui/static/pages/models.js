/** Models: everything on disk and every runner in one table, kept current by /admin/events without reloading. */
import { api } from "../api.js";
import { on } from "../events.js";
import { bytes, clear, duration, h, table, toast } from "../dom.js";
import { hintFor } from "../hints.js";

const PHASE_STATUS = {
  ready: "loaded",
  loading: "loading",
  draining: "unloading",
  failed: "failed",
  quarantined: "quarantined",
  unloaded: "available",
};

let root;
let available = [];
let loaded = new Map();
let phases = new Map();
let reasons = new Map();
let tableEl;
let filterText = "";
let filterStatus = "";
let refreshTimer = null;

function statusOf(model) {
  if (model.status === "unavailable") return "unavailable";
  const phase = phases.get(model.id);
  if (phase) return PHASE_STATUS[phase] ?? phase;
  if (model.quarantined) return "quarantined";
  return model.status;
}

async function refresh() {
  try {
    const [avail, load] = await Promise.all([api("/admin/models/available"), api("/admin/models/loaded")]);
    available = avail.data;
    loaded = new Map(load.data.map((m) => [m.id, m]));
    render();
  } catch (e) {
    toast(`Could not read the models: ${e.message}`);
  }
}

/** Lifecycle events come in bursts (loading → ready); one refresh after the burst reads the new runner's facts. */
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

async function command(path, body, what) {
  try {
    const answer = await api(path, { method: "POST", body });
    if (answer?.status === "download_required")
      toast(`${body.model_id}: files are missing (${answer.missing.join(", ")}); complete it on the Downloads page.`);
    else toast(`${what}: ${body.model_id}`);
  } catch (e) {
    toast(`${what} failed: ${e.message}`);
  } finally {
    refreshSoon();
  }
}

function loadSettingsForm() {
  const model = h("select", { id: "load-model" });
  const context = h("input", { id: "load-context", type: "number", min: 1, placeholder: "as configured" });
  const parallel = h("input", { id: "load-parallel", type: "number", min: 1, max: 256, placeholder: "as configured" });
  const gpu = h("input", { id: "load-gpu", type: "text", placeholder: "auto, max or a number" });
  const form = h(
    "form",
    {
      class: "row",
      onsubmit: (event) => {
        event.preventDefault();
        const settings = {};
        if (context.value) settings.context_size = Number(context.value);
        if (parallel.value) settings.parallel = Number(parallel.value);
        if (gpu.value) settings.gpu_layers = /^\d+$/.test(gpu.value) ? Number(gpu.value) : gpu.value;
        void command("/admin/models/load", { model_id: model.value, settings }, "Loaded with settings");
      },
    },
    h("div", { class: "field" }, h("label", { for: "load-model" }, "Model"), model),
    h("div", { class: "field" }, h("label", { for: "load-context" }, "Context size"), context),
    h("div", { class: "field" }, h("label", { for: "load-parallel" }, "Parallel sequences"), parallel),
    h("div", { class: "field" }, h("label", { for: "load-gpu" }, "GPU layers"), gpu),
    h("button", { type: "submit" }, "Load with these settings"),
  );
  form.fillModels = () => {
    const chosen = model.value;
    clear(
      model,
      available.filter((m) => m.servable).map((m) => h("option", { value: m.id, selected: m.id === chosen }, m.id)),
    );
  };
  return form;
}

let settingsForm;

function render() {
  settingsForm.fillModels();
  const rows = available
    .filter((m) => !filterText || m.id.toLowerCase().includes(filterText) || (m.architecture ?? "").toLowerCase().includes(filterText))
    .filter((m) => !filterStatus || statusOf(m) === filterStatus)
    .map((m) => {
      const run = loaded.get(m.id);
      const status = statusOf(m);
      const reason = reasons.get(m.id) ?? (m.last_error ? { code: m.last_error.code, reason: m.last_error.message } : null);
      const trouble = status === "failed" || status === "quarantined" || status === "unavailable" || (!m.complete && m.missing.length > 0);
      const problem = trouble
        ? h(
            "div",
            { class: "wrap" },
            reason ? h("div", {}, `${reason.code ?? ""} ${reason.reason ?? ""}`) : m.problem ? h("div", {}, m.problem) : null,
            m.missing.length > 0 ? h("div", {}, `missing: ${m.missing.join(", ")}`) : null,
            h(
              "div",
              { class: "muted" },
              hintFor(
                reason?.code ??
                  (m.missing.length > 0
                    ? "download_required"
                    : status === "quarantined"
                      ? "model_quarantined"
                      : m.problem
                        ? "backend_unavailable"
                        : ""),
              ),
            ),
          )
        : null;
      const memory = run ? run.reserved_bytes || run.memory?.rss_bytes || null : null;
      return h(
        "tr",
        { "data-model": m.id },
        h("th", { scope: "row" }, m.id),
        h("td", {}, m.source),
        h("td", {}, m.format),
        h("td", { class: "num" }, bytes(m.size_bytes)),
        h("td", {}, m.quantization ?? "–"),
        h("td", { class: `status status-${status}`, "data-status": status }, status),
        h("td", {}, run ? run.backend : "–"),
        h("td", { class: "num" }, run ? bytes(memory) : "–"),
        h("td", { class: "num" }, run ? run.context_size : (m.context_length ?? "–")),
        h("td", { class: "num" }, run ? `${run.running}/${run.parallel}` : "–"),
        h("td", { class: "num" }, run ? duration(run.idle_sec) : "–"),
        h("td", {}, run ? (run.keep_alive_sec === null ? "forever" : duration(run.keep_alive_sec)) : "–"),
        h("td", {}, run ? (run.pinned ? "yes" : "no") : "–"),
        h("td", { class: "wrap" }, problem),
        h(
          "td",
          {},
          status === "loaded" || status === "loading"
            ? h(
                "button",
                { type: "button", onclick: () => command("/admin/models/unload", { model_id: m.id }, "Unloaded"), "aria-label": `Unload ${m.id}` },
                "Unload",
              )
            : m.servable && status !== "quarantined"
              ? h(
                  "button",
                  { type: "button", onclick: () => command("/admin/models/load", { model_id: m.id }, "Loaded"), "aria-label": `Load ${m.id}` },
                  "Load",
                )
              : null,
          status === "quarantined" || m.quarantined
            ? h(
                "button",
                {
                  type: "button",
                  class: "secondary",
                  onclick: () => command("/admin/models/unquarantine", { model_id: m.id }, "Unquarantined"),
                  "aria-label": `Unquarantine ${m.id}`,
                },
                "Unquarantine",
              )
            : null,
        ),
      );
    });
  clear(
    tableEl,
    table(
      [
        "Model",
        "Source",
        "Format",
        "Size",
        "Quant",
        "Status",
        "Backend",
        "Memory",
        "Context",
        "Slots busy",
        "Idle",
        "Keep-alive",
        "Pinned",
        "Problem and fix",
        "Actions",
      ],
      rows.length > 0
        ? rows
        : [
            h(
              "tr",
              {},
              h(
                "td",
                { colspan: 15, class: "muted" },
                available.length === 0 ? "No models found in the configured folders." : "No model matches the filter.",
              ),
            ),
          ],
    ),
  );
}

export const modelsPage = {
  id: "models",
  title: "Models",
  mount(el) {
    root = el;
    const search = h("input", { id: "models-filter", type: "search", placeholder: "id or architecture" });
    search.addEventListener("input", () => {
      filterText = search.value.trim().toLowerCase();
      render();
    });
    const status = h(
      "select",
      { id: "models-status" },
      ["", "loaded", "loading", "available", "failed", "quarantined", "unavailable"].map((s) => h("option", { value: s }, s || "any")),
    );
    status.addEventListener("change", () => {
      filterStatus = status.value;
      render();
    });
    settingsForm = loadSettingsForm();
    tableEl = h("div", { id: "models-table" });
    root.append(
      h(
        "div",
        { class: "row", role: "search" },
        h("div", { class: "field" }, h("label", { for: "models-filter" }, "Filter"), search),
        h("div", { class: "field" }, h("label", { for: "models-status" }, "Status"), status),
      ),
      tableEl,
      h("h3", {}, "Load with settings"),
      h("p", { class: "muted" }, "Loads (or reloads) the model with these runner settings; empty fields keep the configured value."),
      settingsForm,
    );
    on("snapshot", (snap) => {
      phases = new Map(snap.models.map((m) => [m.model, m.phase]));
      refreshSoon();
    });
    on("model", (move) => {
      phases.set(move.model, move.to);
      if (move.to === "failed" || move.to === "quarantined") reasons.set(move.model, { code: move.code, reason: move.reason });
      else if (move.to === "ready") reasons.delete(move.model);
      render();
      refreshSoon();
    });
  },
  show() {
    void refresh();
  },
};
