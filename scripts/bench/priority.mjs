#!/usr/bin/env node
// Interactive latency under a batch backlog, against any OpenAI-compatible URL: first interactive requests
// alone (idle TTFT), then BATCH batch streams kept busy while interactive requests arrive every GAP ms
// (loaded TTFT), and the batch streams' output rate. Interactive requests send `x-priority: interactive` and
// batch ones `x-priority: batch` (a server without priority classes ignores them: that is the FIFO figure).
//
// node scripts/bench/priority.mjs --url http://127.0.0.1:28480 --model rand-500m [--batch 32] [--interactive 12]
//   [--gap 1500] [--batch-tokens 64] [--interactive-tokens 8] [--prompt "..."] [--no-priority]
import { performance } from "node:perf_hooks";

const args = new Map();
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i].replace(/^--/, "");
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith("--")) args.set(key, true);
  else {
    args.set(key, next);
    i++;
  }
}
const url = String(args.get("url") ?? "http://127.0.0.1:1234").replace(/\/$/, "");
const model = String(args.get("model") ?? "");
const batchStreams = Number(args.get("batch") ?? 32);
const interactiveCount = Number(args.get("interactive") ?? 12);
const gapMs = Number(args.get("gap") ?? 1500);
const batchTokens = Number(args.get("batch-tokens") ?? 64);
const interactiveTokens = Number(args.get("interactive-tokens") ?? 8);
const prompt = String(args.get("prompt") ?? "Once upon a time, in a small village by the sea, there lived a");
const withPriority = !args.has("no-priority");

async function stream(priority, maxTokens) {
  const started = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(withPriority ? { "x-priority": priority } : {}) },
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, stream: true, temperature: 0.7, ignore_eos: true }),
  });
  if (res.status !== 200) throw new Error(`${priority}: HTTP ${res.status} ${await res.text()}`);
  let ttft = null;
  let tokens = 0;
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    const text = decoder.decode(chunk, { stream: true });
    const events = text.split("data: ").filter((e) => e.startsWith("{") && e.includes('"text"'));
    if (events.length > 0 && ttft === null) ttft = performance.now() - started;
    tokens += events.length;
  }
  return { ttft, tokens, ms: performance.now() - started };
}

const pct = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

// idle: one interactive request at a time, nothing else
const idle = [];
for (let i = 0; i < Math.max(4, Math.floor(interactiveCount / 2)); i++) idle.push((await stream("interactive", interactiveTokens)).ttft);

// loaded: batch streams kept running until the interactive ones are done
let stop = false;
let batchTokensDone = 0;
const batchStart = performance.now();
const workers = Array.from({ length: batchStreams }, async () => {
  while (!stop) batchTokensDone += (await stream("batch", batchTokens)).tokens;
});
await new Promise((r) => setTimeout(r, Math.max(gapMs, 2000)));
const loaded = [];
for (let i = 0; i < interactiveCount; i++) {
  loaded.push((await stream("interactive", interactiveTokens)).ttft);
  await new Promise((r) => setTimeout(r, gapMs));
}
stop = true;
await Promise.all(workers);
const batchSeconds = (performance.now() - batchStart) / 1000;

const report = {
  url,
  model,
  priority_headers: withPriority,
  batch_streams: batchStreams,
  interactive_ttft_ms: {
    idle_p50: Math.round(pct(idle, 50)),
    idle_p95: Math.round(pct(idle, 95)),
    loaded_p50: Math.round(pct(loaded, 50)),
    loaded_p95: Math.round(pct(loaded, 95)),
  },
  loaded_over_idle_p95: Number((pct(loaded, 95) / pct(idle, 95)).toFixed(2)),
  batch_tok_s: Number((batchTokensDone / batchSeconds).toFixed(1)),
};
console.log(JSON.stringify(report, null, 2));
