/**
 * Playground: a streamed chat against /v1/chat/completions. Content, reasoning, tool calls (delta.tool_calls,
 * merged by index as they arrive) and structured output appear while they stream; each answer ends with its token
 * counts and timings. The dashboard session authenticates the call; without one (api_keys set, no admin_key) the
 * API key field is used, kept only in this page's memory.
 */
import { api, read } from "../api.js";
import { clear, h, num, toast } from "../dom.js";

let models;
let transcript;
let sendButton;
let stopButton;
let controller = null;
const history = [];
const fields = {};

function field(id, label, control) {
  fields[id] = control;
  control.id = `pg-${id}`;
  return h("div", { class: "field" }, h("label", { for: `pg-${id}` }, label), control);
}

async function fillModels() {
  try {
    const available = await api("/admin/models/available");
    const chosen = models.value;
    const usable = available.data.filter((m) => m.servable && m.type !== "embedding");
    clear(
      models,
      usable.map((m) => h("option", { value: m.id, selected: m.id === chosen }, `${m.id}${m.status === "loaded" ? " (loaded)" : ""}`)),
    );
  } catch (e) {
    toast(`Could not list the models: ${e.message}`);
  }
}

function requestBody() {
  const messages = [];
  const system = fields.system.value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...history);
  const body = { model: models.value, messages, stream: true, stream_options: { include_usage: true } };
  for (const [name, parse] of [
    ["temperature", Number],
    ["top_p", Number],
    ["max_tokens", Number],
    ["seed", Number],
  ]) {
    if (fields[name].value !== "") body[name] = parse(fields[name].value);
  }
  if (fields.tools.value.trim()) body.tools = JSON.parse(fields.tools.value);
  const format = fields.format.value;
  if (format === "json_object") body.response_format = { type: "json_object" };
  if (format === "json_schema")
    body.response_format = { type: "json_schema", json_schema: { name: "answer", schema: JSON.parse(fields.schema.value) } };
  return body;
}

/** Server-Sent Events from a fetch body: yields each `data:` payload. */
async function* sse(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield data;
    }
  }
}

async function send(event) {
  event.preventDefault();
  const text = fields.message.value.trim();
  if (!text || controller) return;
  let body;
  history.push({ role: "user", content: text });
  try {
    body = requestBody();
  } catch (e) {
    history.pop();
    toast(`Tools or schema are not valid JSON: ${e.message}`);
    return;
  }
  fields.message.value = "";
  transcript.append(h("div", { class: "msg user" }, h("span", { class: "who" }, "you"), text));
  const content = h("span", { class: "content", "data-testid": "answer" });
  const reasoning = h("pre", { class: "reasoning muted", hidden: true });
  const tools = h("pre", { class: "tools", hidden: true, "aria-label": "tool calls" });
  const stats = h("div", { class: "stats", role: "status" }, "waiting for the first token…");
  const bubble = h(
    "div",
    { class: "msg assistant", "aria-live": "polite" },
    h("span", { class: "who" }, models.value),
    reasoning,
    content,
    tools,
    stats,
  );
  transcript.append(bubble);
  transcript.scrollTop = transcript.scrollHeight;

  controller = new AbortController();
  sendButton.disabled = true;
  stopButton.disabled = false;
  const started = performance.now();
  let firstAt = null;
  let usage = null;
  let timings = null;
  let finish = null;
  const calls = [];
  try {
    const headers = { "content-type": "application/json", accept: "text/event-stream" };
    if (fields.apikey.value) headers.authorization = `Bearer ${fields.apikey.value}`;
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (!res.ok) await read(res, "/v1/chat/completions");
    for await (const data of sse(res.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      if (chunk.timings) timings = chunk.timings;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const delta = choice.delta ?? {};
      if (firstAt === null && (delta.content || delta.reasoning_content || delta.tool_calls)) firstAt = performance.now();
      if (delta.content) content.append(delta.content);
      if (delta.reasoning_content) {
        reasoning.hidden = false;
        reasoning.append(delta.reasoning_content);
      }
      for (const call of delta.tool_calls ?? []) {
        const slot = (calls[call.index ?? 0] ??= { id: call.id, type: "function", function: { name: "", arguments: "" } });
        if (call.id) slot.id = call.id;
        if (call.function?.name) slot.function.name += call.function.name;
        if (call.function?.arguments) slot.function.arguments += call.function.arguments;
        tools.hidden = false;
        tools.textContent = calls.map((c) => `${c.function.name}(${c.function.arguments})`).join("\n");
      }
      if (choice.finish_reason) finish = choice.finish_reason;
      transcript.scrollTop = transcript.scrollHeight;
    }
    history.push(
      calls.length > 0
        ? { role: "assistant", content: content.textContent || null, tool_calls: calls }
        : { role: "assistant", content: content.textContent },
    );
    if (body.response_format) {
      try {
        JSON.parse(content.textContent);
        content.after(h("div", { class: "stats" }, "✓ valid JSON"));
      } catch {
        content.after(h("div", { class: "stats" }, "✗ not valid JSON"));
      }
    }
    const total = (performance.now() - started) / 1000;
    const ttft = firstAt === null ? null : (firstAt - started) / 1000;
    const completion = usage?.completion_tokens ?? null;
    const genSec = ttft === null ? null : total - ttft;
    stats.textContent = [
      `prompt ${usage?.prompt_tokens ?? "–"} tokens${usage?.prompt_tokens_details?.cached_tokens ? ` (${usage.prompt_tokens_details.cached_tokens} cached)` : ""}`,
      `completion ${completion ?? "–"} tokens`,
      `TTFT ${ttft === null ? "–" : `${Math.round(ttft * 1000)} ms`}`,
      `total ${num(total, 2)} s`,
      `${completion !== null && genSec ? num(completion / genSec) : "–"} tok/s`,
      timings?.predicted_per_second ? `server ${num(timings.predicted_per_second)} tok/s` : null,
      `finish ${finish ?? "–"}`,
    ]
      .filter(Boolean)
      .join(" · ");
    stats.dataset.done = "true";
  } catch (e) {
    history.pop();
    stats.textContent = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    stats.classList.add("error");
  } finally {
    controller = null;
    sendButton.disabled = false;
    stopButton.disabled = true;
  }
}

export const playgroundPage = {
  id: "playground",
  title: "Playground",
  mount(el, session) {
    models = h("select");
    const format = h(
      "select",
      {},
      h("option", { value: "text" }, "text"),
      h("option", { value: "json_object" }, "JSON object"),
      h("option", { value: "json_schema" }, "JSON schema"),
    );
    const schema = h("textarea", { rows: 4 }, '{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"]}');
    transcript = h("div", { class: "transcript", id: "pg-transcript", role: "log", "aria-label": "conversation" });
    sendButton = h("button", { type: "submit" }, "Send");
    stopButton = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller?.abort() }, "Stop");
    const message = h("textarea", { rows: 3, placeholder: "Ask something… (Ctrl+Enter sends)" });
    message.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) event.target.form.requestSubmit();
    });
    el.append(
      h(
        "div",
        { class: "playground" },
        h(
          "div",
          { class: "settings" },
          field("model", "Model", models),
          field("system", "System prompt", h("textarea", { rows: 3 })),
          h(
            "div",
            { class: "row" },
            field("temperature", "Temperature", h("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7 })),
            field("top_p", "Top p", h("input", { type: "number", min: 0, max: 1, step: 0.05 })),
            field("max_tokens", "Max tokens", h("input", { type: "number", min: 1, value: 128 })),
            field("seed", "Seed", h("input", { type: "number" })),
          ),
          field("format", "Output", format),
          field("schema", "JSON schema (for JSON schema output)", schema),
          field("tools", "Tools (JSON array of OpenAI tool definitions, optional)", h("textarea", { rows: 3 })),
          field(
            "apikey",
            "API key (only without a dashboard login)",
            h("input", {
              type: "password",
              autocomplete: "off",
              placeholder: session.auth_required
                ? "not needed: you are logged in"
                : session.api_key_required
                  ? "needed: this server has api_keys"
                  : "not needed",
            }),
          ),
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () => {
                history.length = 0;
                clear(transcript);
              },
            },
            "New conversation",
          ),
        ),
        h("form", { onsubmit: send }, transcript, field("message", "Message", message), h("div", { class: "row" }, sendButton, stopButton)),
      ),
    );
  },
  show() {
    void fillModels();
  },
};
