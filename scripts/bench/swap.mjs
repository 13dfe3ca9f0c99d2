#!/usr/bin/env node
// Swap thrash, against any OpenAI-compatible URL: CLIENTS clients, each alternating between the models named
// (which should not fit in memory together), for SECONDS seconds. Reports completed requests per minute, errors
// by status, the longest wait for an answer, and — from our /metrics when the server is ours — loads per minute.
//
// node scripts/bench/swap.mjs --url http://127.0.0.1:28480 --models a,b [--clients 8] [--seconds 60] [--max-tokens 16]
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
const models = String(args.get("models") ?? "").split(",").filter(Boolean);
const clients = Number(args.get("clients") ?? 8);
const seconds = Number(args.get("seconds") ?? 60);
const maxTokens = Number(args.get("max-tokens") ?? 16);
if (models.length < 2) throw new Error("--models needs at least two model ids");

async function loadsSoFar() {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("lmx:model_loads_total{") && line.includes('outcome="success"')) total += Number(line.split(" ").pop());
    }
    return total;
  } catch {
    return null;
  }
}

const statuses = new Map();
let completed = 0;
let maxWaitMs = 0;
const loadsBefore = await loadsSoFar();
const started = performance.now();
const deadline = started + seconds * 1000;
await Promise.all(
  Array.from({ length: clients }, async (_, client) => {
    for (let i = 0; performance.now() < deadline; i++) {
      const model = models[(client + i) % models.length];
      const t0 = performance.now();
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0.7 }),
      });
      await res.text();
      const waited = performance.now() - t0;
      maxWaitMs = Math.max(maxWaitMs, waited);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) completed++;
    }
  }),
);
const minutes = (performance.now() - started) / 60000;
const loadsAfter = await loadsSoFar();
console.log(
  JSON.stringify(
    {
      url,
      models,
      clients,
      seconds,
      completed_per_min: Math.round(completed / minutes),
      statuses: Object.fromEntries(statuses),
      max_wait_ms: Math.round(maxWaitMs),
      loads_per_min: loadsBefore === null || loadsAfter === null ? null : Math.round((loadsAfter - loadsBefore) / minutes),
    },
    null,
    2,
  ),
);
