/**
 * A fake OpenAI-compatible streaming server with known timings, for testing the benchmark harness's
 * statistics: the first generated text comes `ttftMs` after the request, then one token every `itlMs`.
 * It can fail requests with 500, refuse unknown fields like our gateway does, and counts concurrency.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeOpenAiOptions {
  /** Delay from the request to the first generated token. */
  ttftMs?: number;
  /** Delay between generated tokens. */
  itlMs?: number;
  /** Tokens per request when the request has no max_tokens. */
  defaultTokens?: number;
  /** Answer 500 when this returns true; `stream` counts streamed requests only (1-based), probes excluded. */
  failWhen?: (request: { number: number; stream: number | null; body: Record<string, unknown> }) => boolean;
  /** Fields answered with 400 unknown_parameter, as a strict server does for fields it does not know. */
  rejectFields?: string[];
  /** Prompt characters per token, for usage.prompt_tokens. */
  charsPerToken?: number;
  /** Include llama-server-style timings in the final chunk. */
  timings?: boolean;
}

export interface FakeOpenAi {
  url: string;
  /** Requests received (probes included). */
  requests: number;
  /** Streamed generations in flight now, and the most there ever were at once. */
  inFlight: number;
  maxInFlight: number;
  /** Bodies received, in order. */
  bodies: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOpenAi(options: FakeOpenAiOptions = {}): Promise<FakeOpenAi> {
  const ttftMs = options.ttftMs ?? 50;
  const itlMs = options.itlMs ?? 10;
  const charsPerToken = options.charsPerToken ?? 4;
  const state = { requests: 0, streams: 0, inFlight: 0, maxInFlight: 0, bodies: [] as Array<Record<string, unknown>> };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void handle(req, res, Buffer.concat(chunks).toString("utf8")).catch(() => res.destroy());
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    if (req.method === "GET" && req.url === "/v1/models") {
      return json(res, 200, { object: "list", data: [{ id: "fake-model", object: "model", status: "loaded" }] });
    }
    if (req.method !== "POST" || (req.url !== "/v1/completions" && req.url !== "/v1/chat/completions")) {
      return json(res, 404, { error: { message: "not found", type: "invalid_request_error", param: null, code: "not_found" } });
    }
    state.requests++;
    const number = state.requests;
    const body = JSON.parse(raw) as Record<string, unknown>;
    state.bodies.push(body);
    for (const field of options.rejectFields ?? []) {
      if (field in body) {
        return json(res, 400, {
          error: { message: `unknown parameter '${field}'`, type: "invalid_request_error", param: field, code: "unknown_parameter" },
        });
      }
    }
    const stream = body["stream"] === true ? ++state.streams : null;
    if (options.failWhen?.({ number, stream, body })) {
      return json(res, 500, { error: { message: "injected failure", type: "server_error", param: null, code: "internal_error" } });
    }
    const chat = req.url === "/v1/chat/completions";
    const promptText = chat ? JSON.stringify(body["messages"]) : String(body["prompt"] ?? "");
    const promptTokens = Math.max(1, Math.round(promptText.length / charsPerToken));
    const tokens = typeof body["max_tokens"] === "number" ? body["max_tokens"] : (options.defaultTokens ?? 16);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: tokens,
      total_tokens: promptTokens + tokens,
      prompt_tokens_details: { cached_tokens: 0 },
    };
    const timings = { prompt_n: promptTokens, cache_n: 0, prompt_ms: ttftMs, predicted_n: tokens, predicted_ms: itlMs * Math.max(0, tokens - 1) };
    if (body["stream"] !== true) {
      await sleep(ttftMs + itlMs * Math.max(0, tokens - 1));
      const choice = chat
        ? { index: 0, message: { role: "assistant", content: "x".repeat(tokens) }, finish_reason: "length" }
        : { index: 0, text: "x".repeat(tokens), finish_reason: "length" };
      return json(res, 200, {
        id: "fake",
        object: chat ? "chat.completion" : "text_completion",
        choices: [choice],
        usage,
        ...(options.timings ? { timings } : {}),
      });
    }
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    try {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.flushHeaders();
      const event = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
      const piece = (text: string, finish: string | null) =>
        chat
          ? { id: "fake", object: "chat.completion.chunk", choices: [{ index: 0, delta: finish ? {} : { content: text }, finish_reason: finish }] }
          : { id: "fake", object: "text_completion", choices: [{ index: 0, text, finish_reason: finish }] };
      // a role-only first chunk, as real servers send: it must not count as the first token
      if (chat)
        event({
          id: "fake",
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
        });
      // deadlines from the request's start, so timer drift does not accumulate over a long stream
      const start = performance.now();
      for (let i = 0; i < tokens; i++) {
        const due = start + ttftMs + i * itlMs;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        if (res.destroyed) return;
        event(piece(`t${i} `, null));
      }
      event({ ...piece("", "length"), ...(options.timings ? { timings } : {}) });
      if ((body["stream_options"] as { include_usage?: boolean } | undefined)?.include_usage) {
        event({ id: "fake", object: chat ? "chat.completion.chunk" : "text_completion", choices: [], usage });
      }
      res.end("data: [DONE]\n\n");
    } finally {
      state.inFlight--;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    get inFlight() {
      return state.inFlight;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    get bodies() {
      return state.bodies;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
