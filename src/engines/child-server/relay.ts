/**
 * The runner's side of the gateway ↔ runner link for a child server: the same internal routes as the
 * node-llama-cpp runner (src/runners/runner-http.ts), relayed to the child. Answers stream through as the child
 * writes them (the OpenAI wire format), so the per-token cost here is one socket-to-socket copy. What we
 * promise and the child does not is enforced by the recipe's `prepare` before relaying, and its errors become
 * our codes through the recipe's `mapError`.
 */
import type http from "node:http";
import { LmxError } from "../../errors/codes.js";
import { listenRunnerHttp, readJson, sendJson, type RunnerHttpServer } from "../../runner/internal-http.js";
import type { ChildServerEngine } from "./engine.js";
import { readAnswer } from "./upstream.js";
import { CompletionStreamTranslator } from "../openai-child/translate.js";

const HEALTH_TIMEOUT_MS = 2_000;

export function startChildServerRelay(engine: ChildServerEngine, socketPath: string): Promise<RunnerHttpServer> {
  return listenRunnerHttp(socketPath, (req, res, active) => route(engine, req, res, active));
}

async function route(engine: ChildServerEngine, req: http.IncomingMessage, res: http.ServerResponse, active: Set<AbortController>) {
  const url = req.url ?? "/";
  if (req.method === "GET" && url === "/health") {
    const ok = await engine.healthy(HEALTH_TIMEOUT_MS);
    return sendJson(res, ok ? 200 : 503, { status: ok ? "ok" : `${engine.recipe.name} is not answering` });
  }
  if (req.method === "GET" && url === "/stats") return sendJson(res, 200, await engine.stats());
  if (req.method !== "POST") throw new LmxError("not_found", `no runner route ${req.method} ${url}`);
  const body = await readJson(req);
  if (body === null || typeof body !== "object") throw new LmxError("invalid_json", "runner received a body that is not a JSON object");

  const controller = new AbortController();
  active.add(controller);
  engine.counters.requestsActive++;
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  try {
    const prepared = engine.recipe.prepare(url, body as Record<string, unknown>, engine.upstream, engine.info, controller.signal);
    await prepared.check;
    await relay(engine, prepared.path, prepared.body, res, controller.signal, prepared.translate);
  } finally {
    active.delete(controller);
    engine.counters.requestsActive--;
    engine.counters.requestsServed++;
  }
}

async function relay(
  engine: ChildServerEngine,
  path: string,
  body: Record<string, unknown>,
  res: http.ServerResponse,
  signal: AbortSignal,
  translate?: "completion",
) {
  let upstream: http.IncomingMessage;
  try {
    upstream = await engine.upstream.request("POST", path, JSON.stringify(body), signal);
  } catch (error) {
    if (signal.aborted) return;
    throw new LmxError("model_crashed", `${engine.recipe.name} did not take the request: ${(error as Error).message}`, { retryAfterSec: 1 });
  }
  if (upstream.statusCode !== 200) {
    const answer = await readAnswer(upstream);
    throw engine.recipe.mapError(answer.status, answer.json, answer.text);
  }
  if (translate === "completion") {
    res.writeHead(200, { "content-type": "text/event-stream" });
    const translated = upstream.pipe(new CompletionStreamTranslator());
    await new Promise<void>((resolve) => {
      translated.pipe(res);
      translated.once("end", resolve);
      upstream.once("error", () => {
        res.destroy();
        resolve();
      });
      res.once("close", resolve);
    });
    return;
  }
  res.writeHead(200, { "content-type": String(upstream.headers["content-type"] ?? "application/json") });
  const delay = engine.testTokenDelayMs;
  if (delay > 0) {
    // test-only slowdown (perf gate test): the child writes one event per token
    for await (const chunk of upstream) {
      await new Promise((r) => setTimeout(r, delay));
      res.write(chunk);
    }
    res.end();
    return;
  }
  await new Promise<void>((resolve) => {
    upstream.pipe(res);
    upstream.once("end", resolve);
    upstream.once("error", () => {
      res.destroy();
      resolve();
    });
    res.once("close", resolve);
  });
}
