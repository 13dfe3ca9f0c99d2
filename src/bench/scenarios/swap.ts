/**
 * `lmx bench --scenario swap`: swap thrash, against any OpenAI-compatible URL. `clients` clients spread over
 * `models` (which should not fit in memory together; client i asks for model i mod n, or, with
 * `alternate`, every client switches model with every request), for `seconds`. Reports completed
 * requests per minute, answers by status, the longest wait for one answer, and — from our /metrics, when the
 * server is ours — model loads per minute.
 */
import { performance } from "node:perf_hooks";
import { Agent, fetch } from "undici";

const FRESH_CONNECTIONS = new Agent({ pipelining: 0 });

export interface SwapScenario {
  url: string;
  models: string[];
  clients: number;
  seconds: number;
  maxTokens: number;
  /** Every client switches model with every request (the harshest case: at most one request per client per swap). */
  alternate?: boolean;
  apiKey?: string | null;
}

export interface SwapReport {
  url: string;
  models: string[];
  clients: number;
  seconds: number;
  alternate: boolean;
  completed_per_min: number;
  statuses: Record<string, number>;
  max_wait_ms: number;
  loads_per_min: number | null;
}

async function loadsSoFar(url: string): Promise<number | null> {
  try {
    const res = await fetch(`${url}/metrics`);
    if (res.status !== 200) return null;
    let total = 0;
    for (const line of (await res.text()).split("\n")) {
      if (line.startsWith("lmx:model_loads_total{") && line.includes('outcome="success"')) total += Number(line.split(" ").pop());
    }
    return total;
  } catch {
    return null;
  }
}

export async function runSwapScenario(s: SwapScenario): Promise<SwapReport> {
  if (s.models.length < 2) throw new Error("the swap scenario needs at least two models (--model a,b)");
  const statuses: Record<string, number> = {};
  let completed = 0;
  let maxWaitMs = 0;
  const loadsBefore = await loadsSoFar(s.url);
  const started = performance.now();
  const deadline = started + s.seconds * 1000;
  await Promise.all(
    Array.from({ length: s.clients }, async (_, client) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const model = s.models[(client + (s.alternate ? i : 0)) % s.models.length];
        const t0 = performance.now();
        const res = await fetch(`${s.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {}) },
          body: JSON.stringify({ model, prompt: "Once upon a time", max_tokens: s.maxTokens, temperature: 0.7 }),
          // a fresh connection per request: llama-server closes kept-alive connections idle for 5 s
          dispatcher: FRESH_CONNECTIONS,
        });
        await res.text();
        maxWaitMs = Math.max(maxWaitMs, performance.now() - t0);
        statuses[String(res.status)] = (statuses[String(res.status)] ?? 0) + 1;
        if (res.status === 200) completed++;
      }
    }),
  );
  const minutes = (performance.now() - started) / 60_000;
  const loadsAfter = await loadsSoFar(s.url);
  return {
    url: s.url,
    models: s.models,
    clients: s.clients,
    seconds: s.seconds,
    alternate: s.alternate === true,
    completed_per_min: Math.round(completed / minutes),
    statuses,
    max_wait_ms: Math.round(maxWaitMs),
    loads_per_min: loadsBefore === null || loadsAfter === null ? null : Math.round((loadsAfter - loadsBefore) / minutes),
  };
}
