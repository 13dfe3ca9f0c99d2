/**
 * `lmx bench --scenario priority`: interactive latency under a batch backlog, against any OpenAI-compatible
 * URL. First interactive requests alone (idle TTFT), then `batchStreams` batch streams kept busy while
 * interactive requests arrive every `gapMs` (loaded TTFT), and the batch streams' output rate. Requests carry
 * `x-priority` (a server without priority classes ignores it: that is the FIFO figure; `priorityHeaders: false`
 * makes ours FIFO too).
 */
import { performance } from "node:perf_hooks";
import { Agent, fetch } from "undici";

const FRESH_CONNECTIONS = new Agent({ pipelining: 0 });

export interface PriorityScenario {
  url: string;
  model: string;
  batchStreams: number;
  interactive: number;
  gapMs: number;
  batchTokens: number;
  interactiveTokens: number;
  priorityHeaders: boolean;
  apiKey?: string | null;
}

export interface PriorityReport {
  url: string;
  model: string;
  priority_headers: boolean;
  batch_streams: number;
  interactive_ttft_ms: { idle_p50: number; idle_p95: number; loaded_p50: number; loaded_p95: number };
  loaded_over_idle_p95: number;
  batch_tok_s: number;
  errors: number;
}

const PROMPT = "Once upon a time, in a small village by the sea, there lived a";

export async function runPriorityScenario(s: PriorityScenario): Promise<PriorityReport> {
  let errors = 0;
  const stream = async (priority: "interactive" | "batch", maxTokens: number) => {
    const started = performance.now();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(s.priorityHeaders ? { "x-priority": priority } : {}),
        ...(s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {}),
      },
      body: JSON.stringify({
        model: s.model,
        prompt: PROMPT,
        max_tokens: maxTokens,
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0.7,
        ignore_eos: true,
      }),
      // a fresh connection per request: llama-server closes kept-alive connections idle for 5 s
      dispatcher: FRESH_CONNECTIONS,
    });
    if (res.status !== 200 || !res.body) {
      errors++;
      await res.text();
      return { ttft: null, tokens: 0 };
    }
    let ttft: number | null = null;
    let tail = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const text = decoder.decode(chunk, { stream: true });
      if (ttft === null && text.includes('"text"')) ttft = performance.now() - started;
      // the usage arrives in the last event (stream_options.include_usage): keep only the end of the stream
      tail = (tail + text).slice(-2048);
    }
    const usage = /"completion_tokens":\s*(\d+)/.exec(tail.slice(tail.lastIndexOf('"usage"')));
    const tokens = usage ? Number(usage[1]) : 0;
    return { ttft, tokens };
  };
  const ttfts = (values: Array<number | null>) => values.filter((v): v is number => v !== null);

  // a warm-up request first: the first decode after a load is slower than any other and is not "idle" latency
  await stream("interactive", s.interactiveTokens);
  const idle: Array<number | null> = [];
  for (let i = 0; i < Math.max(8, s.interactive); i++) idle.push((await stream("interactive", s.interactiveTokens)).ttft);

  let stop = false;
  let batchTokens = 0;
  const batchStart = performance.now();
  const workers = Array.from({ length: s.batchStreams }, async () => {
    while (!stop) {
      // awaited first: `total += await …` would read the total before the wait and lose the other streams' tokens
      const { tokens } = await stream("batch", s.batchTokens);
      batchTokens += tokens;
    }
  });
  await new Promise((r) => setTimeout(r, Math.max(s.gapMs, 2000)));
  const loaded: Array<number | null> = [];
  for (let i = 0; i < s.interactive; i++) {
    loaded.push((await stream("interactive", s.interactiveTokens)).ttft);
    await new Promise((r) => setTimeout(r, s.gapMs));
  }
  stop = true;
  await Promise.all(workers);
  const seconds = (performance.now() - batchStart) / 1000;
  const idleTimes = ttfts(idle);
  const loadedTimes = ttfts(loaded);
  return {
    url: s.url,
    model: s.model,
    priority_headers: s.priorityHeaders,
    batch_streams: s.batchStreams,
    interactive_ttft_ms: {
      idle_p50: Math.round(percentile(idleTimes, 50)),
      idle_p95: Math.round(percentile(idleTimes, 95)),
      loaded_p50: Math.round(percentile(loadedTimes, 50)),
      loaded_p95: Math.round(percentile(loadedTimes, 95)),
    },
    loaded_over_idle_p95: Number((percentile(loadedTimes, 95) / Math.max(1, percentile(idleTimes, 95))).toFixed(2)),
    batch_tok_s: Number((batchTokens / seconds).toFixed(1)),
    errors,
  };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
