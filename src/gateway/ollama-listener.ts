/**
 * The optional second listener on Ollama's port (`ollama.port`, 11434 by Ollama's convention; off by default):
 * the same Fastify app, so the same routes, keys, limits and metrics answer there. Apps that only know
 * Ollama's address reach this server without being reconfigured.
 */
import http from "node:http";
import type { FastifyInstance } from "fastify";

export interface OllamaListener {
  port: number;
  close(): Promise<void>;
}

export async function listenForOllama(app: FastifyInstance, host: string, port: number, requestTimeoutMs: number): Promise<OllamaListener> {
  const server = http.createServer({ requestTimeout: requestTimeoutMs, connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs) }, (req, res) =>
    app.routing(req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
