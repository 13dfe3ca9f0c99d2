/**
 * Metrics and trace context against a real gateway and real runners: after streamed and non-streamed traffic,
 * refused requests, a failed load, a client that leaves and a runner that dies mid-stream, /metrics must say
 * exactly what the clients saw, in a format promtool accepts. The stream reader and the traceparent parser are checked on their own first.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { ResponseTail, SseTokenScanner, usageFromTail } from "../../src/metrics/sse.js";
import { parseTraceparent, traceContextFor } from "../../src/metrics/trace.js";
import { startTestServer, waitFor, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";
import { promtoolOrSkip } from "../helpers/promtool.js";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

describe("reading a runner's answer without parsing it per token", () => {
  const event = (delta: string, finish = "null", extra = "") =>
    `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":${delta},"finish_reason":${finish}}]${extra}}\n\n`;
  const stream = [
    event('{"role":"assistant","content":""}'),
    event('{"content":"Once"}'),
    event('{"content":" \\"upon\\""}'),
    event('{"content":"\\"content\\":\\"x"}'),
    event("{}", '"length"', ',"timings":{"prompt_n":7,"cache_n":3,"prompt_ms":1.5,"predicted_n":3,"predicted_ms":2}'),
    'data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":3}}}\n\n',
    "data: [DONE]\n\n",
  ].join("");

  test("token events are counted once however the bytes are cut, and the role event is not a token", () => {
    const bytes = Buffer.from(stream);
    for (const size of [1, 2, 3, 5, 7, 11, 13, 17, 64, bytes.length]) {
      const scanner = new SseTokenScanner();
      let tokens = 0;
      for (let at = 0; at < bytes.length; at += size) tokens += scanner.scan(bytes.subarray(at, at + size));
      assert.equal(tokens, 3, `chunks of ${size} bytes`);
      assert.equal(scanner.finished, true, `chunks of ${size} bytes`);
    }
    const completion = new SseTokenScanner();
    assert.equal(
      completion.scan(
        Buffer.from('data: {"choices":[{"text":"a","finish_reason":null}]}\n\ndata: {"choices":[{"text":"","finish_reason":"stop"}]}\n\n'),
      ),
      1,
    );
    assert.equal(completion.finished, true);
  });

  test("usage comes from the timings of the final event, else from usage, from the last bytes only", () => {
    const tail = new ResponseTail(1024);
    const bytes = Buffer.from("x".repeat(10_000) + stream);
    for (let at = 0; at < bytes.length; at += 100) tail.push(bytes.subarray(at, at + 100));
    assert.ok(tail.buffer().length < 2048, "only the end is kept");
    assert.deepEqual(usageFromTail(tail.buffer()), { promptTokens: 10, completionTokens: 3, cachedTokens: 3 });
    const body = '{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":4,"total_tokens":4}}';
    assert.deepEqual(usageFromTail(Buffer.from(body)), { promptTokens: 4, completionTokens: 0, cachedTokens: 0 });
    assert.equal(usageFromTail(Buffer.from('data: {"choices":[{"delta":{"content":"\\"usage\\":{"}}]}\n\n')), null);
  });

  test("traceparent: valid ones are joined, anything else starts a new trace", () => {
    const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const joined = traceContextFor({ traceparent: caller, tracestate: "vendor=1" });
    assert.equal(joined.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(joined.parentSpanId, "00f067aa0ba902b7");
    assert.notEqual(joined.spanId, "00f067aa0ba902b7");
    assert.match(joined.traceparent, TRACEPARENT);
    assert.ok(joined.traceparent.endsWith("-01"), "the sampled flag is kept");
    assert.equal(joined.tracestate, "vendor=1");
    for (const bad of [
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has no more fields
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "garbage",
    ]) {
      assert.equal(parseTraceparent(bad), null, bad);
      const fresh = traceContextFor({ traceparent: bad, tracestate: "vendor=1" });
      assert.match(fresh.traceparent, TRACEPARENT);
      assert.notEqual(fresh.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
      assert.equal(fresh.tracestate, null, "tracestate without a valid traceparent is dropped");
    }
    assert.deepEqual(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future"), {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      parentSpanId: "00f067aa0ba902b7",
      flags: "03",
    });
  });
});

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** Prometheus text → `name{labels}` → value (labels as the server wrote them, sorted by prom-client). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe("a gateway after real traffic", () => {
  let server: TestServer;
  const usages: Usage[] = [];
  /** Content events the clients of streamed requests received. */
  const streamedPieces: number[] = [];
  let failedLoadCode = "";
  let metricsText = "";
  let samples = new Map<string, number>();
  const callerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const traceHeaders: Record<string, string | null> = {};

  const post = (path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: signal ?? null,
    });

  async function streamed(path: string, body: Record<string, unknown>): Promise<Response> {
    const res = await post(path, { ...body, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200);
    let pieces = 0;
    for (const event of (await res.text()).split("\n\n")) {
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6)) as { choices: Array<{ delta?: { content?: string }; text?: string }>; usage?: Usage };
      const piece = chunk.choices[0]?.delta?.content ?? chunk.choices[0]?.text ?? "";
      if (piece) pieces++;
      if (chunk.usage) usages.push(chunk.usage);
    }
    streamedPieces.push(pieces);
    return res;
  }

  before(async () => {
    const chat = await testModel("stories260K-chatml.gguf");
    // a runner that dies while loading: the failed load and the 503 must be counted
    process.env["LMX_ENABLE_FAULT_INJECTION"] = "1";
    process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ load: { broken: "exit" } });
    server = await startTestServer({
      models: [
        { id: "stories-chat", path: chat.path, parallel: 2, context_size: 512 },
        { id: "broken", path: chat.path, parallel: 1, context_size: 256 },
        { id: "slow", path: chat.path, parallel: 1, context_size: 512 },
      ],
    });
    const messages = [{ role: "user", content: "Tell me a story about a dog." }];

    const plain = await post(
      "/v1/chat/completions",
      { model: "stories-chat", messages, max_tokens: 12, temperature: 0 },
      { traceparent: callerTrace },
    );
    assert.equal(plain.status, 200);
    traceHeaders["joined"] = plain.headers.get("traceparent");
    usages.push(((await plain.json()) as { usage: Usage }).usage);

    const stream = await streamed("/v1/chat/completions", { model: "stories-chat", messages, max_tokens: 16, temperature: 0 });
    traceHeaders["streamed"] = stream.headers.get("traceparent");
    await streamed("/v1/completions", { model: "stories-chat", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });

    const missing = await post("/v1/chat/completions", { model: "no-such-model", messages });
    assert.equal(missing.status, 404);
    traceHeaders["refused"] = missing.headers.get("traceparent");
    const unknown = await post("/v1/chat/completions", { model: "stories-chat", messages, bogus: 1 }, { traceparent: "not-a-traceparent" });
    assert.equal(unknown.status, 400);
    traceHeaders["invalid"] = unknown.headers.get("traceparent");

    const broken = await post("/v1/chat/completions", { model: "broken", messages, max_tokens: 4 });
    assert.equal(broken.status, 503);
    failedLoadCode = ((await broken.json()) as { error: { code: string } }).error.code;

    // a slow runner (started now, so only it has the token delay): one client leaves mid-stream, and one
    // stream is cut by the runner's death
    process.env["LMX_FAULT_INJECTION"] = JSON.stringify({ tokenDelayMs: 10 });
    const leaving = new AbortController();
    const left = await post("/v1/chat/completions", { model: "slow", messages, max_tokens: 200, stream: true }, {}, leaving.signal);
    await untilFirstToken(left);
    leaving.abort();
    // the gateway frees the queue place at once, the runner its sequence when it sees the socket close
    await waitFor(async () => (await server.ctx.scheduler.runnerFor("slow")?.stats())?.slotsBusy === 0, 10_000, "the runner to free the sequence");
    const cut = await post("/v1/chat/completions", { model: "slow", messages, max_tokens: 200, stream: true });
    const reader = await untilFirstToken(cut);
    process.kill(server.ctx.scheduler.runnerFor("slow")!.pid!, "SIGKILL");
    let rest = "";
    for (let part = await reader.read(); !part.done; part = await reader.read()) rest += Buffer.from(part.value).toString();
    assert.match(rest, /"code":"model_crashed"/);
    delete process.env["LMX_ENABLE_FAULT_INJECTION"];
    delete process.env["LMX_FAULT_INJECTION"];
  });

  /** Reads a stream until its first generated piece; returns the reader for the rest. */
  async function untilFirstToken(res: Response): Promise<ReadableStreamDefaultReader<Uint8Array>> {
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = "";
    while (!/"content":"[^"]/.test(text)) {
      const part = await reader.read();
      assert.ok(!part.done, "the stream ended before its first token");
      text += Buffer.from(part.value).toString();
    }
    return reader;
  }

  after(async () => {
    delete process.env["LMX_ENABLE_FAULT_INJECTION"];
    delete process.env["LMX_FAULT_INJECTION"];
    await server?.stop();
  });

  test("GET /metrics serves the Prometheus text format, as does /admin/metrics", async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    metricsText = await res.text();
    assert.equal((await fetch(`${server.url}/admin/metrics`)).status, 200);
    samples = parseExposition(metricsText);
    assert.ok(samples.size > 0);
  });

  test("promtool check metrics accepts the exposition (the lmx: names are vLLM's convention)", (t) => {
    if (!promtoolOrSkip(t)) return;
    const result = spawnSync("promtool", ["check", "metrics"], { input: metricsText, encoding: "utf8" });
    const output = (result.stdout + result.stderr).trim();
    // Exit 3 is "lint problems only"; a parse error (exit 1) fails. Two problems are accepted: promlint reserves
    // ':' for recording rules, and the lmx: names (like vLLM's vllm:) have it on purpose; and prom-client's own
    // process metrics include gauges named *_total (lmx_nodejs_active_handles_total), which are not ours to rename.
    const accepted = [/^lmx:\S+ metric names should not contain ':'$/, /^lmx_nodejs_\S+ non-counter metrics should not have "_total" suffix$/];
    const problems = output.split("\n").filter((line) => line && !accepted.some((ok) => ok.test(line.trim())));
    assert.ok(result.status === 0 || result.status === 3, `promtool exit ${result.status}: ${output}`);
    assert.deepEqual(problems, [], output);
  });

  test("token counters equal the usage the clients saw", () => {
    const model = '{model="stories-chat"}';
    const sum = (read: (u: Usage) => number) => usages.reduce((total, u) => total + read(u), 0);
    assert.equal(usages.length, 3);
    assert.equal(
      samples.get(`lmx:prompt_tokens_total${model}`),
      sum((u) => u.prompt_tokens),
    );
    assert.equal(
      samples.get(`lmx:generation_tokens_total${model}`),
      sum((u) => u.completion_tokens),
    );
    assert.equal(
      samples.get(`lmx:prefix_cache_hit_tokens_total${model}`),
      sum((u) => u.prompt_tokens_details?.cached_tokens ?? 0),
    );
  });

  test("latency histograms: one TTFT per streamed request, one gap per streamed token after the first", () => {
    const model = '{model="stories-chat"}';
    assert.equal(samples.get(`lmx:time_to_first_token_seconds_count${model}`), 2);
    assert.equal(
      samples.get(`lmx:inter_token_latency_seconds_count${model}`),
      streamedPieces.reduce((total, n) => total + n - 1, 0),
    );
    assert.equal(samples.get(`lmx:e2e_request_latency_seconds_count${model}`), 3);
    assert.equal(samples.get(`lmx:request_queue_time_seconds_count${model}`), 3);
    assert.ok((samples.get(`lmx:time_to_first_token_seconds_sum${model}`) ?? 0) > 0);
  });

  test("requests_total by status and error code", () => {
    assert.equal(samples.get('lmx:requests_total{model="stories-chat",status="200",code=""}'), 3);
    assert.equal(samples.get('lmx:requests_total{model="",status="404",code="model_not_found"}'), 1);
    assert.equal(samples.get('lmx:requests_total{model="",status="400",code="unknown_parameter"}'), 1);
    assert.equal(samples.get(`lmx:requests_total{model="broken",status="503",code="${failedLoadCode}"}`), 1);
    assert.equal(samples.get('lmx:requests_total{model="slow",status="499",code="client_closed"}'), 1, "the client that left");
    assert.equal(
      samples.get('lmx:requests_total{model="slow",status="503",code="model_crashed"}'),
      1,
      "a 200 stream cut by a crash counts as its error",
    );
  });

  test("model loads, failed loads and the state read at scrape time", () => {
    assert.equal(samples.get('lmx:model_loads_total{model="stories-chat",outcome="success",code=""}'), 1);
    assert.equal(samples.get('lmx:model_load_duration_seconds_count{model="stories-chat",outcome="success"}'), 1);
    assert.ok((samples.get(`lmx:model_loads_total{model="broken",outcome="failure",code="${failedLoadCode}"}`) ?? 0) >= 1, failedLoadCode);
    assert.equal(samples.get('lmx:model_unloads_total{model="stories-chat",reason="model_crashed"}'), 0);
    assert.equal(samples.get('lmx:model_unloads_total{model="slow",reason="model_crashed"}'), 1);
    assert.equal(samples.get('lmx:time_to_first_token_seconds_count{model="slow"}'), 2);
    assert.equal(samples.get("lmx:models_loaded"), 1);
    assert.equal(samples.get('lmx:num_requests_running{model="stories-chat"}'), 0);
    assert.equal(samples.get('lmx:num_requests_waiting{model="stories-chat"}'), 0);
    assert.equal(samples.get('lmx:kv_cache_slots{model="stories-chat"}'), 2);
    assert.equal(samples.get('lmx:kv_cache_slots_in_use{model="stories-chat"}'), 0);
    assert.ok((samples.get('lmx:runner_rss_bytes{model="stories-chat"}') ?? 0) > 10_000_000);
    assert.ok((samples.get("lmx:memory_budget_bytes") ?? 0) > 0);
    assert.ok((samples.get("lmx:memory_used_bytes") ?? 0) > 0);
    assert.equal(samples.get("lmx:quarantined_models") !== undefined, true);
    assert.ok((samples.get(`lmx:disk_free_bytes{path="${server.stateDir}"}`) ?? 0) > 0);
    assert.equal(samples.get("lmx:download_bytes_total"), 0);
    assert.ok(samples.has("lmx_process_cpu_user_seconds_total"), "default process metrics, lmx_ prefix");
  });

  test("traceparent: the caller's trace is joined, a new one starts when it is missing or invalid", () => {
    const joined = TRACEPARENT.exec(traceHeaders["joined"] ?? "");
    assert.ok(joined, `joined: ${traceHeaders["joined"]}`);
    assert.equal(joined[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace id");
    assert.notEqual(joined[2], "00f067aa0ba902b7", "the gateway's own span");
    assert.equal(joined[3], "01", "sampled flag kept");
    for (const name of ["streamed", "refused", "invalid"]) {
      const fresh = TRACEPARENT.exec(traceHeaders[name] ?? "");
      assert.ok(fresh, `${name}: ${traceHeaders[name]}`);
      assert.notEqual(fresh[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
  });
});

describe("metrics behind admin_key", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ admin_key: "sesame-open", models: [] });
  });
  after(async () => {
    await server?.stop();
  });

  test("/metrics and /admin/metrics need the key, as X-Admin-Key or a bearer token", async () => {
    const open = await fetch(`${server.url}/metrics`);
    assert.equal(open.status, 401);
    assert.equal((await fetch(`${server.url}/admin/metrics`)).status, 401);
    assert.equal((await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer wrong" } })).status, 401);
    assert.equal((await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer sesame-open" } })).status, 200);
    assert.equal((await fetch(`${server.url}/admin/metrics`, { headers: { "x-admin-key": "sesame-open" } })).status, 200);
  });
});
