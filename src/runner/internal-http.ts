/**
 * What both runner-side HTTP servers share (the node-llama-cpp runner's and the llama-server relay's): a plain
 * node:http server on the runner's Unix socket, errors answered in our OpenAI shape, and a drain that lets
 * in-flight requests finish before aborting them. Plain node:http rather than Fastify: a handful of internal
 * routes, and every millisecond and megabyte of runner start-up and RSS counts.
 */
import http from "node:http";
import { LmxError, toHttp } from "../errors/codes.js";

const MAX_INTERNAL_BODY = 64 * 1024 * 1024;

export interface RunnerHttpServer {
  server: http.Server;
  /** Stops accepting; resolves when in-flight requests finished or were aborted after `graceMs`. */
  drain(graceMs: number): Promise<void>;
}

/** Handles one request; `active` holds an AbortController per generation in flight, for the drain. */
export type RunnerRoute = (req: http.IncomingMessage, res: http.ServerResponse, active: Set<AbortController>) => Promise<void>;

export function listenRunnerHttp(socketPath: string, route: RunnerRoute): Promise<RunnerHttpServer> {
  const active = new Set<AbortController>();
  const server = http.createServer((req, res) => {
    void route(req, res, active).catch((error: unknown) => {
      const lmx = error instanceof LmxError ? error : new LmxError("internal_error", `runner error: ${(error as Error)?.message ?? String(error)}`);
      if (!res.headersSent) sendError(res, lmx);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  const drain = async (graceMs: number) => {
    server.close();
    const deadline = Date.now() + graceMs;
    while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const controller of active) controller.abort();
    while (active.size > 0) await new Promise((r) => setTimeout(r, 10));
    server.closeAllConnections();
  };
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve({ server, drain }));
  });
}

export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_INTERNAL_BODY) throw new LmxError("request_too_large", "request body too large for the runner");
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new LmxError("invalid_json", "runner received a body that is not JSON");
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: http.ServerResponse, error: LmxError): void {
  const { status, headers, body } = toHttp(error);
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
