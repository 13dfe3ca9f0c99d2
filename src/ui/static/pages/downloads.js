/** Downloads: start a pull (repo or repo:QUANT), progress with speed and ETA from /admin/events, cancel, and what incomplete models lack. */
import { api } from "../api.js";
import { on } from "../events.js";
import { bytes, clear, duration, h, table, toast } from "../dom.js";

const jobs = new Map();
let listEl;
let incompleteEl;

async function refresh() {
  try {
    const [list, available] = await Promise.all([api("/admin/models/downloads"), api("/admin/models/available")]);
    for (const job of list.data) jobs.set(job.id, job);
    render();
    renderIncomplete(available.data.filter((m) => m.missing.length > 0));
  } catch (e) {
    toast(`Could not read the downloads: ${e.message}`);
  }
}

async function start(spec) {
  try {
    const job = await api("/admin/models/download", { method: "POST", body: { repo: spec } });
    jobs.set(job.id, job);
    render();
  } catch (e) {
    toast(`The download of ${spec} did not start: ${e.message}`);
  }
}

function render() {
  const rows = [...jobs.values()]
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))
    .map((job) => {
      const pct = job.bytes_total > 0 ? Math.floor((100 * job.bytes_done) / job.bytes_total) : job.status === "completed" ? 100 : 0;
      const eta = job.status === "running" && job.bytes_per_sec > 0 ? (job.bytes_total - job.bytes_done) / job.bytes_per_sec : null;
      return h(
        "tr",
        { "data-download": job.id, "data-repo": job.repo },
        h("th", { scope: "row" }, job.repo),
        h("td", { class: `status status-${job.status}`, "data-status": job.status }, job.status),
        h(
          "td",
          {},
          h("progress", { max: 100, value: pct, "aria-label": `${job.repo} progress` }),
          " ",
          h("span", { class: "pct", "data-pct": pct }, `${pct}%`),
        ),
        h("td", { class: "num" }, `${bytes(job.bytes_done)} / ${bytes(job.bytes_total)}`),
        h("td", { class: "num" }, job.status === "running" ? `${bytes(job.bytes_per_sec)}/s` : "–"),
        h("td", { class: "num" }, eta === null ? "–" : duration(eta)),
        h("td", { class: "wrap" }, job.error ? `${job.error.code}: ${job.error.message}` : ""),
        h(
          "td",
          {},
          job.status === "running" || job.status === "queued"
            ? h(
                "button",
                {
                  type: "button",
                  class: "secondary",
                  "aria-label": `Cancel ${job.repo}`,
                  onclick: async () => {
                    try {
                      jobs.set(job.id, await api(`/admin/models/downloads/${encodeURIComponent(job.id)}`, { method: "DELETE" }));
                      render();
                    } catch (e) {
                      toast(`Cancel failed: ${e.message}`);
                    }
                  },
                },
                "Cancel",
              )
            : null,
        ),
      );
    });
  clear(
    listEl,
    table(
      ["Repository", "Status", "Progress", "Bytes", "Speed", "ETA", "Error", ""],
      rows.length > 0 ? rows : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No downloads since the server started."))],
    ),
  );
}

function renderIncomplete(models) {
  clear(
    incompleteEl,
    models.length === 0
      ? h("p", { class: "muted" }, "Every model on disk is complete.")
      : table(
          ["Model", "Missing files", ""],
          models.map((m) =>
            h(
              "tr",
              {},
              h("th", { scope: "row" }, m.id),
              h("td", { class: "wrap" }, m.missing.join(", ")),
              h(
                "td",
                {},
                m.source === "hf_cache"
                  ? h("button", { type: "button", onclick: () => start(m.id), "aria-label": `Complete ${m.id}` }, "Complete download")
                  : "missing from disk",
              ),
            ),
          ),
        ),
  );
}

export const downloadsPage = {
  id: "downloads",
  title: "Downloads",
  mount(el) {
    const input = h("input", { id: "download-repo", type: "text", required: true, placeholder: "org/name or org/name:Q4_K_M", size: 40 });
    listEl = h("div", { id: "downloads-table" });
    incompleteEl = h("div", { id: "downloads-incomplete" });
    el.append(
      h(
        "form",
        {
          class: "row",
          onsubmit: (event) => {
            event.preventDefault();
            if (input.value.trim()) void start(input.value.trim());
          },
        },
        h("div", { class: "field" }, h("label", { for: "download-repo" }, "Hugging Face repository (optionally :QUANT)"), input),
        h("button", { type: "submit" }, "Download"),
      ),
      listEl,
      h("h3", {}, "Incomplete models"),
      incompleteEl,
    );
    on("download", (event) => {
      const job = jobs.get(event.id) ?? { id: event.id, repo: event.repo, created_at: event.at, error: null };
      jobs.set(event.id, { ...job, ...event });
      render();
      // the finished job's error, local path and the inventory's new state come from the API
      if (event.status !== "running" && event.status !== "queued") void refresh();
    });
  },
  show() {
    void refresh();
  },
};
